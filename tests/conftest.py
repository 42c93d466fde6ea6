"""Shared fixtures: the real Hydra config, composed as `run.py` would, a tiny episode maker,
and registry URLs for SQLite and for a throwaway PostgreSQL server."""
from __future__ import annotations

import os
import sys
from pathlib import Path

# Every test, and every run.py / server process a test starts, uses this checkout's code (not
# whichever checkout is installed) and one thread: the models are tiny, and on 2 cores two
# OpenMP threads per process spin against each other (12 debug test episodes: 0.7 s on one
# thread, 34 s on two, measured on a loaded machine).
_SRC = str(Path(__file__).resolve().parents[1] / "src")
sys.path.insert(0, _SRC)  # this process too: an editable install may point at another checkout
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_SRC, os.environ.get("PYTHONPATH")]))
sys.path.insert(0, _SRC)  # this process too: the installed package may be another checkout's
os.environ["OMP_NUM_THREADS"] = "1"

import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

torch.set_num_threads(1)
from hydra._internal.callbacks import Callbacks
from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn
from hydra.core.utils import run_job as hydra_run_job
from hydra.types import HydraContext
from omegaconf import DictConfig, open_dict
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

import metalearn.resolvers  # noqa: E402,F401
from metalearn.conf import CONFIG_DIR, compose_train  # noqa: E402

# The configs are conf/ at the top of the checkout, mapped to metalearn.conf by the install;
# an install of another checkout would compose its configs with this checkout's code.
if CONFIG_DIR != ROOT / "conf":
    raise RuntimeError(f"metalearn.conf is {CONFIG_DIR}, not this checkout's {ROOT / 'conf'}: "
                       "install this checkout (bash scripts/setup.sh test)")
from metalearn.data.episode import Episode  # noqa: E402


def compose_config(overrides: list[str], out_dir: Path) -> DictConfig:
    """The shipped `train.yaml` (conf/) with overrides, its Hydra runtime dir set to `out_dir`."""
    cfg = compose_train(overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real config for a fast run writing only under tmp_path."""
    def make(*overrides: str, out: str = "out") -> DictConfig:
        return compose_config(
            ["experiment=reptile_amazon", "debug=fast", f"paths.log_dir={tmp_path}/logs",
             "callbacks.rich_progress_bar=null", *overrides],
            tmp_path / out)
    return make


def run_py(tmp_path: Path, *overrides: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """`python run.py <overrides>` as a user runs it, logging under tmp_path; must exit 0."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *overrides, f"paths.log_dir={tmp_path}",
         "callbacks.rich_progress_bar=null"],
        cwd=tmp_path, env=dict(os.environ, PROJECT_ROOT=str(ROOT)), capture_output=True,
        text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def run_job(cfg: DictConfig, task: Callable[[DictConfig], Any]) -> JobReturn:
    """task on cfg (from compose_config) as Hydra runs a job: in cfg's output folder, handed the
    config without its hydra node, between the hydra.callbacks' on_job_start and on_job_end (the
    registry's records the attempt). A failure is in the JobReturn, as Hydra keeps it."""
    return hydra_run_job(task_function=task, config=cfg, job_dir_key="hydra.runtime.output_dir",
                         job_subdir_key=None, configure_logging=False,
                         hydra_context=HydraContext(config_loader=None, callbacks=Callbacks(cfg)))


def train_job(cfg: DictConfig) -> dict[str, float]:
    """`train(cfg)` as run.py runs it: one Hydra job, recorded as an attempt by the registry's
    Hydra callback unless registry=off; its metrics, or its error raised."""
    from metalearn.train import train

    return run_job(cfg, train).return_value


def scalars(version_dir: Path) -> EventAccumulator:
    """The TensorBoard scalars of one logger version folder."""
    events = EventAccumulator(str(version_dir))
    events.Reload()
    return events


def toy_episode(seed: int, n: int = 6, dim: int = 3, family: str = "toy/t0") -> Episode:
    """A 2-way episode of random points (the trunk is the identity)."""
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    ys = torch.tensor([0, 1] * (n // 2))
    yq = torch.tensor([1, 0] * (n // 2))
    return Episode(xs, ys, xq, yq, family=family, group=family.split("/")[0],
                   ways=2, shots=n // 2, queries=n // 2)


# ---- the run registry: SQLite and PostgreSQL URLs ------------------------------------------
PG_HINT = "apt-get install -y postgresql (Debian) and pip install 'psycopg[binary]'"


def _pg_bindir() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's newest version."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parts[-3]))
    return versions[-1].parent if versions else None


def _free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user() -> tuple[list[str], str | None]:
    """Command prefix to run the server binaries unprivileged (root may not run postgres)."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip(f"running as root and no 'postgres' user to run the server as ({PG_HINT})")
    runuser = shutil.which("runuser") or shutil.which("setpriv")
    if runuser is None:
        pytest.skip("running as root and neither runuser nor setpriv is available")
    if runuser.endswith("runuser"):
        return [runuser, "-u", "postgres", "--"], "postgres"
    return [runuser, "--reuid=postgres", "--regid=postgres", "--init-groups"], "postgres"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """Start PostgreSQL on a free loopback port in a temp folder; yield its base URL."""
    pytest.importorskip("psycopg", reason=f"psycopg is not installed ({PG_HINT})")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip(f"PostgreSQL server binaries (initdb, pg_ctl) not found ({PG_HINT})")
    prefix, user = _as_server_user()
    home = Path(tempfile.mkdtemp(prefix="metalearn-pg-"))
    if user is not None:
        shutil.chown(home, user, user)
    home.chmod(0o700)
    data, log, port = home / "data", home / "server.log", _free_port()
    try:
        subprocess.run(
            [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, text=True, timeout=120,
        )
        options = f"-p {port} -h 127.0.0.1 -k {home} -F"
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
             "-o", options, "start"],
            check=True, capture_output=True, text=True, timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        if log.exists():
            detail += log.read_text()[-2000:]
        shutil.rmtree(home, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {exc}\n{detail}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True, timeout=60, check=False,
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> str:
    """A fresh, empty schema on the test server (cheaper than a database per test)."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return f"{pg_server}/postgres?options=-csearch_path%3D{name}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A registry file in a temp folder."""
    return f"sqlite:///{tmp_path / 'registry.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: the SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("pg_url")
