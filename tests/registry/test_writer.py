"""The batched writer: rows land in batches, the lease is renewed, failures are retried."""
from __future__ import annotations

import time

import pytest
from sqlalchemy.exc import OperationalError

from metalearn.registry import RegistryError, Store
from metalearn.registry.writer import AttemptWriter


def test_rows_are_written_in_the_background(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    attempt = store.create_attempt(name="a")
    writer = AttemptWriter(store, attempt, flush_s=0.05, heartbeat_s=0.05, lease_s=1).start()
    for step in range(50):
        writer.add({"loss": 1.0 / (step + 1), "acc": step / 50}, step)
    deadline = time.monotonic() + 5
    while len(store.metrics(attempt)) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(store.metrics(attempt)) == 100
    before = store.get_attempt(attempt)["lease_until"]
    time.sleep(0.2)
    assert store.get_attempt(attempt)["lease_until"] > before
    writer.close()
    assert writer.rows_written == 100


def test_close_writes_what_is_left(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    attempt = store.create_attempt(name="a")
    writer = AttemptWriter(store, attempt, flush_s=60, heartbeat_s=60, lease_s=120).start()
    writer.add({"loss": 0.5}, 7)
    writer.close()
    (row,) = store.metrics(attempt)
    assert (row["name"], row["step"], row["value"]) == ("loss", 7, 0.5)
    assert row["time"] == pytest.approx(time.time(), abs=5)


class FlakyStore(Store):
    """Fails the first `failures` metric writes like a locked or unreachable database."""

    failures = 2

    def add_metrics(self, attempt_id, rows):  # noqa: ANN001, ANN201
        if self.failures:
            self.failures -= 1
            raise OperationalError("INSERT", {}, Exception("database is unreachable"))
        return super().add_metrics(attempt_id, rows)


def test_failed_writes_are_retried_and_logged(sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    store = FlakyStore(sqlite_url)
    attempt = store.create_attempt(name="a")
    writer = AttemptWriter(store, attempt, flush_s=0.05, heartbeat_s=0.05, lease_s=1).start()
    writer.add({"loss": 1.0}, 0)
    deadline = time.monotonic() + 5
    while not store.metrics(attempt) and time.monotonic() < deadline:
        time.sleep(0.05)
    writer.close()
    assert len(store.metrics(attempt)) == 1
    assert "will retry" in caplog.text


def test_backlog_past_the_limit_raises(sqlite_url: str) -> None:
    store = FlakyStore(sqlite_url)
    store.failures = 10**6
    attempt = store.create_attempt(name="a")
    writer = AttemptWriter(store, attempt, flush_s=0.01, heartbeat_s=0.5, lease_s=1, max_pending=10).start()
    writer.add({"loss": 1.0}, 0)
    time.sleep(0.2)
    with pytest.raises(RegistryError, match="registry writes have failed"):
        for step in range(20):
            writer.add({"loss": 1.0}, step)
    with pytest.raises(OperationalError):
        writer.close()


def test_lease_must_outlast_heartbeat(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    with pytest.raises(RegistryError, match="must exceed"):
        AttemptWriter(store, 1, heartbeat_s=5, lease_s=5)
