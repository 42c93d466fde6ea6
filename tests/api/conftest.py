"""API fixtures: an app over a temp registry with the project's real config tree, and a real
`metalearn serve` process on loopback."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from metalearn.api.app import create_app
from metalearn.api.launch import LaunchCheck
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.conf import CONFIG_DIR
from metalearn.registry import Store
from metalearn.resolvers import data_dir
from tests.conftest import _free_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIVE_TOKEN = "live-test-token"  # the token the `server` process starts with
# How long a server process may take to answer /health: importing torch, Lightning and the app
# takes seconds on an idle machine and over a minute on a loaded one. The wait ends at once
# when the process exits.
SERVER_START_S = 600.0


@pytest.fixture
def auth() -> dict[str, str]:
    """The Authorization header the test app accepts."""
    return dict(AUTH)


@pytest.fixture(scope="session")
def validator() -> OverrideValidator:
    return OverrideValidator(CONFIG_DIR, root=ROOT)


@pytest.fixture
def store(sqlite_url: str) -> Store:
    return Store(sqlite_url)


@pytest.fixture
def log_root(tmp_path: Path) -> Path:
    """The server's log folder: the only place it loads checkpoints from."""
    return tmp_path / "logs"


@pytest.fixture
def runner(store: Store, validator: OverrideValidator, log_root: Path, tmp_path: Path) -> Runner:
    """A runner that is never started: submitted attempts stay queued."""
    return Runner(store, ROOT, LaunchCheck(validator, store, log_root), log_dir=tmp_path / "api-logs")


@pytest.fixture
def client(store: Store, runner: Runner, validator: OverrideValidator) -> Iterator[TestClient]:
    with TestClient(create_app(store, runner, validator, token=TOKEN)) as c:
        yield c


@pytest.fixture
def live_app(store: Store, runner: Runner, validator: OverrideValidator) -> Iterator[tuple[str, int]]:
    """The test app on uvicorn in a thread of this process: (host, port), for requests a
    TestClient cannot send (a chunked body that never ends, a connection held open)."""
    config = uvicorn.Config(create_app(store, runner, validator, token=TOKEN), host="127.0.0.1",
                            port=_free_port(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="live-app", daemon=True)
    thread.start()
    started = time.monotonic()
    while not server.started:
        waited = time.monotonic() - started
        assert thread.is_alive() and waited < SERVER_START_S, (
            f"uvicorn did not start listening on {config.host}:{config.port}: waited {waited:.1f} s "
            f"(at most {SERVER_START_S:.0f} s); its thread {'runs' if thread.is_alive() else 'ended'}")
        time.sleep(0.05)
    try:
        yield config.host, config.port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def served_project(tmp_path: Path) -> Path:
    """A folder outside the clone, as where a user who pip-installed metalearn starts the server:
    no run.py, no configs; the data where `$METALEARN_DATA` says, the clone's tokenized cache."""
    project = tmp_path / "project"
    project.mkdir()
    (ROOT / ".cache").mkdir(exist_ok=True)
    (project / ".cache").symlink_to(ROOT / ".cache")
    return project


def wait_for_health(proc: subprocess.Popen, base: str, log_path: Path,
                    timeout: float = SERVER_START_S) -> float:
    """Wait until the server at base answers GET /health with 200, while proc lives; the
    seconds it took. Raises RuntimeError saying what was awaited, for how long, and why it
    ended (the process exited, or the time ran out), with the end of the server's log."""
    started = time.monotonic()
    while True:
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return time.monotonic() - started
        except httpx.TransportError:
            pass  # not listening yet
        waited = time.monotonic() - started
        code = proc.poll()
        if code is not None or waited > timeout:
            why = f"the process exited with status {code}" if code is not None else "the process still runs"
            tail = log_path.read_text(errors="replace")[-4000:] if log_path.is_file() else "(no log)"
            raise RuntimeError(f"server did not start: waited {waited:.1f} s (at most {timeout:.0f} s) for "
                               f"GET {base}/health to answer 200; {why}. Its log ends:\n{tail}")
        time.sleep(0.3)


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path, served_project: Path) -> Iterator[str]:
    """`metalearn serve` on a free loopback port over a temp registry, started in
    `served_project` (metalearn importable, not run from a clone); yields its base URL."""
    port = _free_port()
    env = {**os.environ, "METALEARN_API_TOKEN": LIVE_TOKEN, "METALEARN_DATA": data_dir(str(ROOT)),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    env.pop("PROJECT_ROOT", None)
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "metalearn.cli", "--url", sqlite_url, "serve", "--port", str(port)],
        cwd=served_project, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_health(proc, base, tmp_path / "server.log")
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
