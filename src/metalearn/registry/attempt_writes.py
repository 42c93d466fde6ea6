"""Writing attempts: creating one (whole, with its metrics and test results, or alone),
setting its fields and status, retracting a finished one."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine

from metalearn.registry import schema
from metalearn.registry.engine import write_tx
from metalearn.registry.errors import NotFound, RegistryError
from metalearn.registry.metric_writes import metric_rows, result_rows, write_metrics, write_test_results
from metalearn.registry.values import utcnow

A = schema.attempts
_COLUMNS = frozenset(A.c.keys())
DEFAULT_LEASE_S = 60.0  # an active row nobody renews is interrupted after this


class AttemptWrites:
    """The Store's writes of attempt rows (retract reads the row first: AttemptQueries.get_attempt)."""

    engine: Engine

    def create_attempt(self, **fields: Any) -> int:
        """Insert an attempt (status running unless given) and return its database id."""
        values = _new_attempt(fields)
        with write_tx(self.engine) as conn:
            result = conn.execute(A.insert().values(**values))
            return int(result.inserted_primary_key[0])

    def put_attempt(
        self,
        fields: Mapping[str, Any],
        *,
        metrics: Sequence[Mapping[str, Any]],
        test_results: Sequence[Mapping[str, Any]],
        attempt_id: int | None = None,
    ) -> int:
        """Create an attempt (or set the fields of attempt_id) with its metric rows and test
        results upserted, in one transaction: all of it is written, or nothing. Returns its id."""
        _check_fields(fields)
        values = _new_attempt(fields) if attempt_id is None else dict(fields)
        with write_tx(self.engine) as conn:
            if attempt_id is None:
                attempt_id = int(conn.execute(A.insert().values(**values)).inserted_primary_key[0])
            elif conn.execute(A.update().where(A.c.id == attempt_id).values(**values)).rowcount != 1:
                raise NotFound(f"no attempt with id {attempt_id}")
            if metrics:
                write_metrics(conn, metric_rows(attempt_id, metrics))
            if test_results:
                write_test_results(conn, result_rows(attempt_id, test_results))
        return attempt_id

    def update_attempt(
        self, attempt_id: int, *, only_status: Iterable[str] | None = None, **fields: Any
    ) -> bool:
        """Set fields of an attempt (only while its status is one of only_status); True if set."""
        _check_fields(fields)
        stmt = A.update().where(A.c.id == attempt_id).values(**fields)
        if only_status is not None:
            stmt = stmt.where(A.c.status.in_(list(only_status)))
        with write_tx(self.engine) as conn:
            return conn.execute(stmt).rowcount == 1

    def set_status(
        self,
        attempt_id: int,
        status: str,
        *,
        error: str | None = None,
        only_status: Iterable[str] | None = None,
        **fields: Any,
    ) -> bool:
        """Move an attempt to status, stamping start/end times; True if the row changed."""
        now = utcnow()
        fields["status"] = status
        if error is not None:
            fields["error"] = error
        if status in schema.TERMINAL:
            fields.setdefault("ended_at", now)
            fields["lease_until"] = None
        return self.update_attempt(attempt_id, only_status=only_status, **fields)

    def retract(self, attempt_id: int, reason: str) -> None:
        """Withdraw a finished attempt (say, made with a bug found later): its record stays,
        with the reason in front of its error text, but it no longer counts as completed."""
        if not reason.strip():
            raise RegistryError("a retraction needs a reason")
        row = self.get_attempt(attempt_id)
        finished = (schema.COMPLETED, schema.FAILED, schema.INTERRUPTED)
        error = f"retracted: {reason}" + (f"\n\n{row['error']}" if row["error"] else "")
        if not self.update_attempt(attempt_id, only_status=finished, status=schema.RETRACTED,
                                   error=error):
            raise RegistryError(f"attempt {attempt_id} is {row['status']}: only a completed, "
                                "failed or interrupted attempt can be retracted")


def _new_attempt(fields: Mapping[str, Any]) -> dict[str, Any]:
    """The row of a new attempt: status running and kind train unless given, times stamped."""
    now = utcnow()
    values: dict[str, Any] = {"status": schema.RUNNING, "kind": "train", "created_at": now}
    values.update(fields)
    _check_fields(values)
    if values["status"] in schema.ACTIVE:
        values.setdefault("started_at", now)
        values.setdefault("heartbeat_at", now)
        values.setdefault("lease_until", now + timedelta(seconds=DEFAULT_LEASE_S))
    return values


def _check_fields(fields: Mapping[str, Any]) -> None:
    """Refuse unknown columns and unknown statuses before they reach SQL."""
    unknown = set(fields) - _COLUMNS
    if unknown:
        raise RegistryError(f"unknown attempt fields: {sorted(unknown)}")
    status = fields.get("status")
    if status is not None and status not in schema.STATUSES:
        raise RegistryError(f"unknown status {status!r}; one of {schema.STATUSES}")
