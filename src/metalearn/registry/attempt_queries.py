"""Reading attempts: one by id, lists filtered and newest first, the queue, the best by a metric."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select

from metalearn.registry import schema
from metalearn.registry.engine import read_tx
from metalearn.registry.errors import NotFound, RegistryError

A = schema.attempts
_LIGHT = [c for c in A.c if c.name != "config"]  # list views leave the (large) config out


class AttemptQueries:
    """The Store's reads of attempt rows; a read first reaps stale leases (Leases.reap_stale),
    and best ranks by final values (MetricReads.final_values)."""

    engine: Engine

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


def _filtered(stmt, status, experiment, algorithm, kind, parent_id):  # noqa: ANN001, ANN202
    """Apply the list filters of list_attempts (which best goes through)."""
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
