"""A command line that fails before its Hydra job starts (an unknown experiment or key, a config
that does not compose) as a `failed` attempt with its message: no config, so no Hydra
callback, records it. The entry points (`python run.py`, `metalearn train`) hand
`record_launch_failure` to `metalearn.run.launch`.

Light on import: the registry (SQLAlchemy) loads only when a failure is recorded, so an entry
point holding this hook starts a `registry=off` run without it.
"""
from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger(__name__)


def record_launch_failure(argv: Sequence[str], message: str, root: str | os.PathLike[str] | None) -> None:
    """A failed attempt for argv (Hydra's command line), in the registry it names; with
    $METALEARN_ATTEMPT_ID, that queued attempt fails instead. Nothing with `registry=off`; a
    registry that cannot be written is a warning (the launch has failed already)."""
    overrides = [a for a in argv if not a.startswith("-")]
    values = dict(a.split("=", 1) for a in overrides if "=" in a)
    if values.get("registry") == "off":
        return
    from sqlalchemy.exc import SQLAlchemyError

    from metalearn.registry.errors import RegistryError

    try:
        _record(overrides, values, message, root)
    except (RegistryError, SQLAlchemyError, OSError) as err:
        log.warning("the failure could not be recorded: %s", err)


def _record(overrides: list[str], values: dict[str, str], message: str,
            root: str | os.PathLike[str] | None) -> None:
    from metalearn.registry import schema
    from metalearn.registry.record import ATTEMPT_ENV, git_commit, redact_arg
    from metalearn.registry.store import Store, utcnow

    store = Store(launch_registry_url(values, root))
    try:
        adopt = os.environ.pop(ATTEMPT_ENV, None)
        if adopt:
            store.set_status(int(adopt), schema.FAILED, error=message,
                             only_status=[*schema.ACTIVE, schema.QUEUED])
            return
        experiment = values.get("experiment")
        store.create_attempt(
            status=schema.FAILED, kind="train", name=experiment or "train", experiment=experiment,
            overrides=[redact_arg(a) for a in overrides],
            command=[redact_arg(a) for a in sys.argv], host=socket.gethostname(),
            pid=os.getpid(), git_commit=git_commit(root), error=message, ended_at=utcnow())
    finally:
        store.close()


def launch_registry_url(values: dict[str, str], root: str | os.PathLike[str] | None) -> str:
    """The registry a command line names, as conf/registry/default.yaml resolves it:
    registry.url, else $METALEARN_REGISTRY_URL, else paths.log_dir (paths.root_dir/logs) on
    the command line, else the project root's logs/."""
    from metalearn.registry.engine import URL_ENV, default_url, log_dir_url

    if values.get("registry.url"):
        return values["registry.url"]
    log_dir = values.get("paths.log_dir") or (
        f"{values['paths.root_dir']}/logs" if values.get("paths.root_dir") else None)
    if os.environ.get(URL_ENV) or not log_dir:
        return default_url(root)
    return log_dir_url(Path(log_dir).expanduser())
