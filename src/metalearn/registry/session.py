"""One attempt being recorded in this process: its row, writer and final status."""
from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Iterable, Mapping
from typing import Any

from metalearn.registry import schema
from metalearn.registry.errors import RegistryError
from metalearn.registry.store import Store, utcnow
from metalearn.registry.writer import AttemptWriter

log = logging.getLogger(__name__)

_active: AttemptSession | None = None
_active_lock = threading.Lock()


class AttemptSession:
    """Writes one attempt: metrics through an AttemptWriter, status and results straight away."""

    def __init__(
        self,
        store: Store,
        attempt_id: int,
        writer: AttemptWriter,
        writer_options: Mapping[str, Any] | None = None,
    ) -> None:
        self.store, self.attempt_id, self.writer = store, attempt_id, writer
        self.writer_options = dict(writer_options or {})
        self.closed = False
        # What stopped the trainer (RegistryCallback.on_exception): the attempt's owner ends it
        # with this when an interrupt leaves the job before the owner hears of the outcome.
        self.stopped_by: BaseException | None = None

    @classmethod
    def open(
        cls,
        store: Store,
        fields: Mapping[str, Any],
        *,
        adopt_id: int | None = None,
        writer_options: Mapping[str, Any] | None = None,
    ) -> AttemptSession:
        """Create the attempt row (or take over a queued one by id) and start its writer."""
        fields = dict(fields)
        fields["status"] = schema.RUNNING
        if adopt_id is None:
            attempt_id = store.create_attempt(**fields)
        else:
            attempt_id = adopt_id
            fields.setdefault("started_at", utcnow())
            taken = store.update_attempt(
                attempt_id, only_status=(schema.QUEUED, schema.RUNNING), **fields
            )
            if not taken:
                raise_not_adoptable(store, attempt_id)
        writer = AttemptWriter(store, attempt_id, **dict(writer_options or {})).start()
        log.info("recording attempt %d in %r", attempt_id, store)
        return cls(store, attempt_id, writer, writer_options)

    @classmethod
    def join(
        cls, store: Store, attempt_id: int, writer_options: Mapping[str, Any] | None = None
    ) -> AttemptSession:
        """Write into an attempt another process owns (a DDP-spawned worker of its run)."""
        writer = AttemptWriter(store, attempt_id, **dict(writer_options or {})).start()
        return cls(store, attempt_id, writer, writer_options)

    def detach(self) -> None:
        """Write what is queued and stop, leaving the status to the process that owns it."""
        if not self.closed:
            self.closed = True
            self.writer.close()

    def add_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        """Queue metric values logged at step."""
        self.writer.add(metrics, step)

    def set_status(self, status: str) -> None:
        """Move to running or testing (terminal states go through finish)."""
        self.store.set_status(self.attempt_id, status, only_status=schema.ACTIVE)

    def update(self, **fields: Any) -> None:
        """Set attempt fields such as ckpt_path."""
        self.store.update_attempt(self.attempt_id, **fields)

    def put_test_results(self, rows: Iterable[Mapping[str, Any]]) -> None:
        """Record (domain) test results now."""
        self.store.put_test_results(self.attempt_id, list(rows))

    def flush(self) -> None:
        """Write queued metrics now."""
        self.writer.flush()

    def finish(self, status: str, error: BaseException | str | None = None) -> None:
        """Write what is queued, then set the final status (with the traceback for an error)."""
        if self.closed:
            return
        self.closed = True
        text = _error_text(error)
        try:
            self.writer.close()
        except Exception as exc:  # the final status still has to be written, then re-raise
            self.store.set_status(
                self.attempt_id, schema.FAILED, error=_join(text, _error_text(exc))
            )
            raise
        self.store.set_status(self.attempt_id, status, error=text)
        log.info("attempt %d %s", self.attempt_id, status)


def raise_not_adoptable(store: Store, attempt_id: int) -> None:
    """Explain why a queued attempt could not be taken over."""
    row = store.get_attempt(attempt_id)
    raise RegistryError(f"attempt {attempt_id} is {row['status']}, not queued: cannot record into it")


def activate(session: AttemptSession | None) -> None:
    """Make session the one the logger and callback of this process write to."""
    global _active
    with _active_lock:
        _active = session


def active() -> AttemptSession | None:
    """The attempt being recorded in this process, if any."""
    return _active


def _error_text(error: BaseException | str | None) -> str | None:
    """A traceback for an exception, the string itself for a message."""
    if error is None or isinstance(error, str):
        return error
    return "".join(traceback.format_exception(error)).strip()


def _join(*parts: str | None) -> str:
    return "\n\n".join(p for p in parts if p)

