"""SQLAlchemy engines for the registry: SQLite tuned for many writers, PostgreSQL as given."""
from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import URL, make_url

from metalearn.project import find_project_root
from metalearn.registry.errors import RegistryError

URL_ENV = "METALEARN_REGISTRY_URL"
SQLITE_BUSY_TIMEOUT_S = 60.0


def default_url(root: str | os.PathLike[str] | None = None) -> str:
    """The registry URL: $METALEARN_REGISTRY_URL, else logs/registry.db under the project root."""
    env = os.environ.get(URL_ENV)
    if env:
        return env
    base = Path(root) if root is not None else find_project_root()
    return log_dir_url(base / "logs")


def log_dir_url(log_dir: str | os.PathLike[str]) -> str:
    """The URL of the SQLite registry a log folder holds (its registry.db)."""
    return f"sqlite:///{(Path(log_dir) / 'registry.db').resolve()}"


def normalize_url(url: str) -> URL:
    """Parse url; a bare postgresql:// uses the psycopg (3) driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise RegistryError(f"unsupported registry backend {backend!r}: use sqlite:/// or postgresql://")
    return parsed


def make_engine(url: str) -> Engine:
    """An engine for url; SQLite gets WAL, a long busy timeout and BEGIN IMMEDIATE for writes."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=4)
    database = parsed.database or ""
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        parsed,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
    )
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def _sqlite_on_connect(dbapi_connection, _record) -> None:  # noqa: ANN001 (DB-API objects)
    """Take transaction control from the driver and set the pragmas every connection needs."""
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    _enable_wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _enable_wal(cursor) -> None:  # noqa: ANN001 (a DB-API cursor)
    """Switch the database to WAL, retrying while another process holds it.

    Processes opening a new database at once race to switch it; the loser can get "database
    is locked" at once, without the busy timeout (seen in CI: 1 of 120 processes, 8 at a time).
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.5)


def _sqlite_on_begin(conn: Connection) -> None:
    """BEGIN IMMEDIATE for writes, so a writer waits for the lock instead of failing midway."""
    mode = "IMMEDIATE" if conn.get_execution_options().get("registry_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: committed on success, rolled back on error."""
    with engine.connect().execution_options(registry_write=True) as conn:
        with conn.begin():
            yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    """A read-only transaction (a consistent snapshot)."""
    with engine.connect() as conn:
        with conn.begin():
            yield conn
