"""The registry store: attempts, metrics and test results in SQLite or PostgreSQL."""
from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, Table, and_, func, select
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from metalearn.registry import schema
from metalearn.registry.engine import default_url, make_engine, read_tx, write_tx
from metalearn.registry.errors import NotFound, RegistryError
from metalearn.registry.migrate import ensure_schema

log = logging.getLogger(__name__)

A = schema.attempts
M = schema.metrics
T = schema.test_results
_COLUMNS = frozenset(A.c.keys())
DEFAULT_LEASE_S = 60.0  # an active row nobody renews is interrupted after this
_LIGHT = [c for c in A.c if c.name != "config"]  # list views leave the (large) config out


def utcnow() -> datetime:
    """Naive UTC now: the registry stores every time in UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def finite_or_none(value: Any) -> float | None:
    """A float for storage; NaN becomes None (SQLite cannot hold NaN)."""
    number = float(value)
    return None if math.isnan(number) else number


class Store:
    """Reads and writes one registry database; safe to share between threads."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or default_url()
        self.engine = make_engine(self.url)
        ensure_schema(self.engine)

    def __repr__(self) -> str:
        return f"Store({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    # ---- attempts: writes -------------------------------------------------------------
    @property
    def dialect(self) -> str:
        """The backend: `sqlite` or `postgresql` (what its columns hold: registry.limits)."""
        return self.engine.dialect.name

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
                _upsert(conn, M, _metric_payload(attempt_id, metrics), ["attempt_id", "name", "step"],
                        ["value", "time"])
            if test_results:
                _upsert(conn, T, _result_payload(attempt_id, test_results),
                        ["attempt_id", "group", "metric"], _RESULT_VALUES)
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

    def heartbeat(self, attempt_id: int, lease_s: float) -> bool:
        """Mark an active attempt alive for lease_s more seconds; False if it is no longer active."""
        now = utcnow()
        return self.update_attempt(
            attempt_id,
            only_status=schema.ACTIVE,
            heartbeat_at=now,
            lease_until=now + timedelta(seconds=lease_s),
        )

    def reap_stale(self) -> list[int]:
        """Mark active attempts whose heartbeat lease ran out as interrupted; return their ids."""
        now = utcnow()
        stale = and_(A.c.status.in_(schema.ACTIVE), A.c.lease_until < now)
        with read_tx(self.engine) as conn:
            ids = [int(i) for i in conn.execute(select(A.c.id).where(stale)).scalars()]
        if not ids:
            return []
        with write_tx(self.engine) as conn:
            conn.execute(
                A.update()
                .where(A.c.id.in_(ids), stale)
                .values(
                    status=schema.INTERRUPTED,
                    ended_at=A.c.lease_until,
                    lease_until=None,
                    error=func.coalesce(
                        A.c.error, "heartbeat went stale: the process was killed or lost"
                    ),
                )
            )
        log.info("marked stale attempts interrupted: %s", ids)
        return ids

    # ---- metrics and test results: writes ---------------------------------------------
    def add_metrics(self, attempt_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert metric rows {name, step, value, time}; a repeated (name, step) keeps the last."""
        if not rows:
            return
        payload = _metric_payload(attempt_id, rows)
        with write_tx(self.engine) as conn:
            _upsert(conn, M, payload, ["attempt_id", "name", "step"], ["value", "time"])

    def put_test_results(self, attempt_id: int, rows: Sequence[Mapping[str, Any]]) -> None:
        """Upsert (attempt, group, metric) test results: value, ci95, episodes, shots, queries."""
        if not rows:
            return
        payload = _result_payload(attempt_id, rows)
        with write_tx(self.engine) as conn:
            _upsert(conn, T, payload, ["attempt_id", "group", "metric"], _RESULT_VALUES)

    # ---- reads --------------------------------------------------------------------------
    def get_attempt(self, attempt_id: int) -> dict[str, Any]:
        """One attempt with its config; raises NotFound."""
        self.reap_stale()
        with read_tx(self.engine) as conn:
            row = conn.execute(select(A).where(A.c.id == attempt_id)).mappings().first()
        if row is None:
            raise NotFound(f"no attempt with id {attempt_id}")
        return dict(row)

    def list_attempts(
        self,
        *,
        status: str | Sequence[str] | None = None,
        experiment: str | None = None,
        algorithm: str | None = None,
        kind: str | None = None,
        parent_id: int | None = None,
        study: str | None = None,
        limit: int | None = None,
        with_config: bool = False,
        debug: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Attempts, newest first, filtered by the given fields; debug False leaves the debug
        runs out (`is_debug`), True keeps only them, None keeps every attempt."""
        self.reap_stale()
        stmt = select(A) if with_config else select(*_LIGHT)
        stmt = _filtered(stmt, status, experiment, algorithm, kind, parent_id)
        if study is not None:
            stmt = stmt.where(A.c.study == study)
        stmt = stmt.order_by(A.c.id.desc())
        if limit is not None and debug is None:
            stmt = stmt.limit(limit)
        with read_tx(self.engine) as conn:
            rows = [dict(r) for r in conn.execute(stmt).mappings()]
        if debug is not None:  # told by the overrides (JSON), so here rather than in SQL
            rows = [r for r in rows if is_debug(r["overrides"]) == debug][:limit]
        return rows

    def queued(self, limit: int) -> list[dict[str, Any]]:
        """Queued attempts that carry a command to start, oldest first."""
        stmt = (
            select(*_LIGHT)
            .where(A.c.status == schema.QUEUED, A.c.command.is_not(None))
            .order_by(A.c.id)
            .limit(limit)
        )
        with read_tx(self.engine) as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def metrics(
        self,
        attempt_id: int,
        *,
        name: str | None = None,
        after_step: int | None = None,
        before_step: int | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Metric rows of an attempt ordered by step then name; both step bounds are exclusive."""
        stmt = select(M.c.name, M.c.step, M.c.value, M.c.time).where(M.c.attempt_id == attempt_id)
        if name is not None:
            stmt = stmt.where(M.c.name == name)
        if after_step is not None:
            stmt = stmt.where(M.c.step > after_step)
        if before_step is not None:
            stmt = stmt.where(M.c.step < before_step)
        stmt = stmt.order_by(M.c.step, M.c.name)
        if limit is not None:
            stmt = stmt.limit(limit)
        with read_tx(self.engine) as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def last_step(self, attempt_id: int, name: str | None = None) -> int | None:
        """The highest step any (or the named) metric of the attempt was logged at."""
        stmt = select(func.max(M.c.step)).where(M.c.attempt_id == attempt_id)
        if name is not None:
            stmt = stmt.where(M.c.name == name)
        with read_tx(self.engine) as conn:
            return conn.execute(stmt).scalar_one_or_none()

    def metric_summary(self, attempt_id: int) -> dict[str, dict[str, Any]]:
        """Per metric name: count, min, max, last step and the value at the last step."""
        agg = (
            select(
                M.c.name,
                func.count().label("count"),
                func.min(M.c.value).label("min"),
                func.max(M.c.value).label("max"),
                func.max(M.c.step).label("last_step"),
            )
            .where(M.c.attempt_id == attempt_id)
            .group_by(M.c.name)
            .subquery()
        )
        stmt = (
            select(agg, M.c.value.label("last"))
            .join(
                M,
                and_(
                    M.c.attempt_id == attempt_id,
                    M.c.name == agg.c.name,
                    M.c.step == agg.c.last_step,
                ),
            )
            .order_by(agg.c.name)
        )
        with read_tx(self.engine) as conn:
            return {r["name"]: dict(r) for r in conn.execute(stmt).mappings()}

    def final_values(self, name: str, attempt_ids: Sequence[int] | None = None) -> dict[int, float | None]:
        """The value of metric name at its last step, for each attempt that logged it."""
        last = select(M.c.attempt_id, func.max(M.c.step).label("step")).where(M.c.name == name)
        if attempt_ids is not None:
            last = last.where(M.c.attempt_id.in_(list(attempt_ids)))
        last = last.group_by(M.c.attempt_id).subquery()
        stmt = select(M.c.attempt_id, M.c.value).join(
            last,
            and_(M.c.attempt_id == last.c.attempt_id, M.c.step == last.c.step, M.c.name == name),
        )
        with read_tx(self.engine) as conn:
            return {int(a): v for a, v in conn.execute(stmt)}

    def test_results(self, attempt_id: int) -> list[dict[str, Any]]:
        """Test results of an attempt, one per (group, metric)."""
        stmt = select(T).where(T.c.attempt_id == attempt_id).order_by(T.c["group"], T.c.metric)
        with read_tx(self.engine) as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]

    def best(
        self,
        metric: str,
        *,
        mode: str = "max",
        limit: int = 5,
        status: str | Sequence[str] | None = None,
        experiment: str | None = None,
        algorithm: str | None = None,
        debug: bool | None = False,
    ) -> list[tuple[dict[str, Any], float]]:
        """Attempts ranked by the final value of metric (max or min), NaN left out; debug runs
        (smoke tests of a few steps) only with debug None (all) or True (only them)."""
        if mode not in ("max", "min"):
            raise RegistryError(f"mode must be 'max' or 'min', not {mode!r}")
        candidates = {a["id"]: a for a in self.list_attempts(
            status=status, experiment=experiment, algorithm=algorithm, debug=debug
        )}
        values = self.final_values(metric, list(candidates)) if candidates else {}
        ranked = sorted(
            ((candidates[i], v) for i, v in values.items() if v is not None),
            key=lambda pair: pair[1],
            reverse=(mode == "max"),
        )
        return ranked[:limit]


def is_debug(overrides: Sequence[Any] | None) -> bool:
    """Whether an attempt was a debug run: its overrides choose a `debug` preset (`debug=fast`,
    `+debug=limit`; not `debug=null` or `~debug`), the last such override deciding."""
    chosen = False
    for override in overrides or ():
        key, sep, value = str(override).partition("=")
        if key.lstrip("+") == "debug":
            chosen = bool(sep) and value.strip() not in ("", "null")
        elif key == "~debug":
            chosen = False
    return chosen


def _value(value: Any) -> float | None:
    """A metric value for storage (None and NaN are stored as NULL)."""
    return None if value is None else finite_or_none(value)


_RESULT_VALUES = ["value", "ci95", "episodes", "shots", "queries"]  # what a repeated result sets


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


def _metric_payload(attempt_id: int, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Metric rows for the upsert; a repeated (name, step) keeps the last."""
    unique = {(r["name"], int(r["step"])): r for r in rows}
    return [{"attempt_id": attempt_id, "name": n, "step": s, "value": _value(r["value"]), "time": r["time"]}
            for (n, s), r in unique.items()]


def _result_payload(attempt_id: int, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Test result rows for the upsert."""
    return [
        {
            "attempt_id": attempt_id,
            "group": str(r["group"]),
            "metric": str(r["metric"]),
            "value": finite_or_none(r["value"]),
            "ci95": finite_or_none(r["ci95"]),
            "episodes": int(r["episodes"]),
            "shots": int(r["shots"]),
            "queries": int(r["queries"]),
        }
        for r in rows
    ]


def _check_fields(fields: Mapping[str, Any]) -> None:
    """Refuse unknown columns and unknown statuses before they reach SQL."""
    unknown = set(fields) - _COLUMNS
    if unknown:
        raise RegistryError(f"unknown attempt fields: {sorted(unknown)}")
    status = fields.get("status")
    if status is not None and status not in schema.STATUSES:
        raise RegistryError(f"unknown status {status!r}; one of {schema.STATUSES}")


def _filtered(stmt, status, experiment, algorithm, kind, parent_id):  # noqa: ANN001, ANN202
    """Apply the list filters shared by list_attempts and best."""
    if status is not None:
        statuses = [status] if isinstance(status, str) else list(status)
        stmt = stmt.where(A.c.status.in_(statuses))
    for column, value in (
        (A.c.experiment, experiment),
        (A.c.algorithm, algorithm),
        (A.c.kind, kind),
        (A.c.parent_id, parent_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def _upsert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], keys: list[str], update: list[str]
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE for SQLite and PostgreSQL, as one executemany."""
    dialect = {"sqlite": sqlite_dialect, "postgresql": pg_dialect}.get(conn.dialect.name)
    if dialect is None:
        raise RegistryError(f"no upsert for dialect {conn.dialect.name!r}")
    stmt = dialect.insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in update}
    )
    conn.execute(stmt, rows)
