"""API fixtures: an app over a temp registry with the project's real config tree, and a real
`metalearn serve` process on loopback."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from fastapi.testclient import TestClient

from metalearn.api import local_server
from metalearn.api.app import create_app
from metalearn.api.launch import LaunchCheck
from metalearn.api.local_server import wait_for_health  # noqa: F401 (the tests import it from here)
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.conf import CONFIG_DIR
from metalearn.registry import Store
from metalearn.resolvers import data_dir

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LIVE_TOKEN = "live-test-token"  # the token the `server` process starts with
SERVER_START_S = local_server.START_S  # how long a server process may take to answer /health


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
                            port=local_server.free_port(), log_level="warning", lifespan="off")
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


def project_folder(parent: Path) -> Path:
    """parent/project: a folder outside the clone, as where a user who pip-installed metalearn
    starts the server: no run.py, no configs; the data where `$METALEARN_DATA` says, the
    clone's tokenized cache."""
    project = parent / "project"
    project.mkdir()
    (ROOT / ".cache").mkdir(exist_ok=True)
    (project / ".cache").symlink_to(ROOT / ".cache")
    return project


def served_env() -> dict[str, str]:
    """What a test server's environment adds: the clone's data folder."""
    return {"METALEARN_DATA": data_dir(str(ROOT))}


@pytest.fixture
def served_project(tmp_path: Path) -> Path:
    """A project folder outside the clone (see project_folder)."""
    return project_folder(tmp_path)


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path, served_project: Path) -> Iterator[str]:
    """`metalearn serve` on a free loopback port over a temp registry, started in
    `served_project` (metalearn importable, not run from a clone); yields its base URL."""
    with local_server.running(sqlite_url, token=LIVE_TOKEN, cwd=served_project, log_path=tmp_path / "server.log",
                              env=served_env(), unset=["PROJECT_ROOT"],
                              timeout=SERVER_START_S) as live:
        yield live.base
