"""`metalearn serve`: the API on uvicorn, loopback by default, token required off loopback."""
from __future__ import annotations

import logging
import os
from pathlib import Path

from fastapi import FastAPI

from metalearn.api.app import create_app
from metalearn.api.auth import MIN_TOKEN_LENGTH, TOKEN_ENV, is_loopback
from metalearn.api.launch import LaunchCheck
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.conf import CONFIG_DIR
from metalearn.project import find_project_root
from metalearn.registry.errors import RegistryError
from metalearn.registry.store import Store

log = logging.getLogger(__name__)


def build(url: str, host: str, *, max_parallel: int = 1, max_queued: int = 16,
          root: str | Path | None = None, predict_cache: int = 2) -> FastAPI:
    """The app, its store and its (not yet started) runner for the project at root;
    predict_cache: loaded checkpoints kept for POST /runs/{id}/predict."""
    project = Path(root).resolve() if root else find_project_root()
    if not project.is_dir():
        raise RegistryError(f"--root {project}: no such folder")
    token = os.environ.get(TOKEN_ENV) or None
    open_reads = is_loopback(host)
    if not open_reads and token is None:
        raise RegistryError(f"binding {host} (not loopback) needs {TOKEN_ENV} set: every request is then authenticated")
    if not open_reads and len(token) < MIN_TOKEN_LENGTH:
        raise RegistryError(
            f"{TOKEN_ENV} is {len(token)} characters; binding {host} (not loopback) needs at least "
            f"{MIN_TOKEN_LENGTH}. Make one with: "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'")
    store = Store(url)
    validator = OverrideValidator(CONFIG_DIR, root=project)  # the configs `metalearn train` composes
    check = LaunchCheck(validator, store, project / "logs")
    runner = Runner(store, project, check, max_parallel=max_parallel, max_queued=max_queued)
    return create_app(store, runner, validator, token=token, token_for_reads=not open_reads,
                      predict_cache=predict_cache)


def serve(url: str, host: str = "127.0.0.1", port: int = 8000, *, max_parallel: int = 1,
          max_queued: int = 16, root: str | Path | None = None, predict_cache: int = 2) -> int:
    """Run the API until interrupted; children still running keep recording themselves."""
    import uvicorn

    app = build(url, host, max_parallel=max_parallel, max_queued=max_queued, root=root,
                predict_cache=predict_cache)
    runner: Runner = app.state.runner
    runner.start()
    log.info("metalearn API on http://%s:%d (registry %r)", host, port, app.state.store)
    try:
        uvicorn.run(app, host=host, port=port, log_level="info")
    finally:
        runner.stop()
    return 0
