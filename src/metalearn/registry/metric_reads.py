"""Reading metric rows and test results: pages of rows, summaries, final values."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, and_, func, select

from metalearn.registry import schema
from metalearn.registry.engine import read_tx

M = schema.metrics
T = schema.test_results


class MetricReads:
    """The Store's reads of metrics and test results."""

    engine: Engine

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
