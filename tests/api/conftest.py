"""API fixtures: an app over a temp registry with the project's real config tree."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from metalearn.api.app import create_app
from metalearn.api.launch import LaunchCheck
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.registry import Store

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def auth() -> dict[str, str]:
    """The Authorization header the test app accepts."""
    return dict(AUTH)


@pytest.fixture(scope="session")
def validator() -> OverrideValidator:
    return OverrideValidator(ROOT / "conf")


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
