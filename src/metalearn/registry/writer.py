"""Buffered metric writes and the heartbeat, done by one background thread per attempt."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from metalearn.registry.errors import RegistryError
from metalearn.registry.store import Store, finite_or_none

log = logging.getLogger(__name__)


class AttemptWriter:
    """Collects metric rows on the training thread; a daemon thread writes them in batches.

    The training thread only appends to a list, so a step costs microseconds; the thread
    flushes every flush_s seconds (or sooner once batch_size rows wait) and renews the
    attempt's heartbeat lease every heartbeat_s seconds. A failed write is logged and
    retried with the rows kept; past max_pending rows the next add raises.
    """

    def __init__(
        self,
        store: Store,
        attempt_id: int,
        *,
        flush_s: float = 1.0,
        heartbeat_s: float = 5.0,
        lease_s: float = 60.0,
        batch_size: int = 1000,
        max_pending: int = 200_000,
    ) -> None:
        if lease_s <= heartbeat_s:
            raise RegistryError(f"lease_s ({lease_s}) must exceed heartbeat_s ({heartbeat_s})")
        self.store, self.attempt_id = store, attempt_id
        self.flush_s, self.heartbeat_s, self.lease_s = flush_s, heartbeat_s, lease_s
        self.batch_size, self.max_pending = batch_size, max_pending
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()  # guards _pending
        self._write_lock = threading.Lock()  # one flush at a time
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_beat = 0.0
        self.last_error: BaseException | None = None
        self.rows_written = 0

    def start(self) -> AttemptWriter:
        """Beat once now and start the background thread."""
        self.beat()
        self._thread = threading.Thread(
            target=self._loop, name=f"registry-writer-{self.attempt_id}", daemon=True
        )
        self._thread.start()
        return self

    def add(self, metrics: Mapping[str, Any], step: int) -> None:
        """Queue one row per metric at step (the hot path: no I/O here)."""
        now = time.time()
        rows = [
            {"name": str(k), "step": int(step), "value": finite_or_none(v), "time": now}
            for k, v in metrics.items()
        ]
        with self._lock:
            self._pending.extend(rows)
            waiting = len(self._pending)
        if waiting >= self.batch_size:
            self._wake.set()
        if waiting > self.max_pending and self.last_error is not None:
            raise RegistryError(
                f"registry writes have failed and {waiting} metric rows are waiting: {self.last_error}"
            ) from self.last_error

    def wake(self) -> None:
        """Have the thread write what is queued now, without waiting for it."""
        self._wake.set()

    def flush(self) -> None:
        """Write every queued row now; raises if the write fails (the rows are kept)."""
        with self._write_lock:
            with self._lock:
                rows, self._pending = self._pending, []
            if not rows:
                return
            try:
                self.store.add_metrics(self.attempt_id, rows)
            except BaseException:
                with self._lock:
                    self._pending[:0] = rows
                raise
            self.rows_written += len(rows)

    def beat(self) -> None:
        """Renew the heartbeat lease."""
        self.store.heartbeat(self.attempt_id, self.lease_s)
        self._last_beat = time.monotonic()

    def close(self) -> None:
        """Stop the thread and write what is left; raises if that final write fails."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=max(30.0, 2 * self.flush_s))
            if self._thread.is_alive():
                raise RegistryError("registry writer thread did not stop within 30 s")
            self._thread = None
        self.flush()

    def _loop(self) -> None:
        """Flush and beat until stopped; keep going through database errors."""
        while not self._stop.is_set():
            self._wake.wait(timeout=min(self.flush_s, self.heartbeat_s))
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.flush()
                if time.monotonic() - self._last_beat >= self.heartbeat_s:
                    self.beat()
                self.last_error = None
            except SQLAlchemyError as exc:
                self.last_error = exc
                log.exception("registry write for attempt %d failed; will retry", self.attempt_id)
