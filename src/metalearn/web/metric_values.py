"""An attempt's metric values as the pages show them: curves thinned in SQL to what a chart
draws, and scores as text (accuracy in percent, the same on every page)."""
from __future__ import annotations

import math
from collections.abc import Sequence

from sqlalchemy import func, or_, select

from metalearn.registry import schema
from metalearn.registry.engine import read_tx
from metalearn.registry.store import Store

M = schema.metrics
PRE, CI = "_pre", "_ci95"
MAX_POINTS = 600  # points a curve keeps by default (every k-th step, the last always)


def is_acc(metric: str) -> bool:
    """Accuracy metrics (shown in percent): the name, before any `@steps` and without a `_pre`
    or `_ci95` ending (the same accuracy before adapting, its interval), ends with acc."""
    name = metric.split("@", 1)[0]
    for ending in (PRE, CI):
        name = name.removesuffix(ending)
    return name.endswith("acc")


def score(value: float | None, metric: str, digits: int = 4) -> str:
    """A score as a table shows it: accuracy in percent (two decimals), others to digits
    significant digits; empty for a missing value."""
    if value is None or not math.isfinite(value):
        return ""
    return f"{value * 100:.2f}" if is_acc(metric) else f"{value:.{digits}g}"


def drawn(value: float | None, metric: str) -> float | None:
    """A value as a chart draws it: accuracy in percent, like the tables; None stays None."""
    return None if value is None else value * 100 if is_acc(metric) else value


def axis_name(metric: str) -> str:
    """The name of a chart axis showing the metric's values (drawn): `acc (%)`, `mse`."""
    return f"{metric} (%)" if is_acc(metric) else metric


def thinned_metrics(store: Store, attempt_id: int, names: Sequence[str] | None = None, *,
                    max_points: int = MAX_POINTS) -> dict[str, list[tuple[int, float | None]]]:
    """The (step, value) rows of the attempt's metrics (those in names, or all), each series
    thinned in SQL to at most about max_points: every k-th row of a longer one and its last.
    One query however long the run (tens of thousands of rows, asked for every few seconds
    while a page is live). A value is None where NaN was logged."""
    if names is not None and not names:
        return {}
    ranked = select(M.c.name, M.c.step, M.c.value,
                    func.row_number().over(partition_by=M.c.name, order_by=M.c.step).label("rank"),
                    func.count().over(partition_by=M.c.name).label("total")).where(M.c.attempt_id == attempt_id)
    if names is not None:
        ranked = ranked.where(M.c.name.in_(list(names)))
    rows = ranked.subquery()
    stride = (rows.c.total + (max_points - 1)) // max_points  # whole-number division on every backend
    stmt = (select(rows.c.name, rows.c.step, rows.c.value)
            .where(or_((rows.c.rank - 1) % stride == 0, rows.c.rank == rows.c.total))
            .order_by(rows.c.name, rows.c.step))
    series: dict[str, list[tuple[int, float | None]]] = {}
    with read_tx(store.engine) as conn:
        for name, step, value in conn.execute(stmt):
            series.setdefault(name, []).append((step, value))
    return series
