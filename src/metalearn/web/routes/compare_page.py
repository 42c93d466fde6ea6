"""The compare page at `/compare?ids=1&ids=2`: 2 to 12 attempts side by side (the runs table's
checkboxes, named ids, submit here). Config differences, final metric values, a chart per
shared metric with a curve per attempt, and meta-test scores per held-out group as bars."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from metalearn.registry.errors import NotFound
from metalearn.web.charts import BarSeries, Series, interval_bars, line_chart
from metalearn.web.compare_view import MAX_IDS, MIN_IDS, OPEN_CHARTS, CompareError, Comparison, comparison, parse_ids
from metalearn.web.metric_values import axis_name, drawn
from metalearn.web.pages import ViewerDep, render

router = APIRouter()
Ids = Annotated[list[str] | None, Query(max_length=20)]


@router.get("/compare")
def compare_page(request: Request, viewer: ViewerDep, ids: Ids = None) -> Response:
    limits = {"min_ids": MIN_IDS, "max_ids": MAX_IDS}
    try:
        wanted = parse_ids(ids or [])
    except CompareError as exc:
        return render("compare.html", viewer, status_code=422, view=None, problem=str(exc), **limits)
    if len(wanted) < MIN_IDS:
        return render("compare.html", viewer, view=None, problem=None, **limits)
    try:
        view = comparison(request.app.state.store, wanted)
    except NotFound as exc:
        return render("compare.html", viewer, status_code=404, view=None, problem=str(exc), **limits)
    return render("compare.html", viewer, view=view, problem=None, curves=_curves(view),
                  bars=_bars(view), open_charts=OPEN_CHARTS, **limits)


def _curves(view: Comparison) -> list[tuple[str, Markup]]:
    """One line chart per shared metric, a series per attempt (its legend label)."""
    charts = []
    for name, per_attempt in view.curves.items():
        series = [Series(c.label, points) for c, points in zip(view.columns, per_attempt, strict=True)]
        charts.append((name, line_chart(series, title=name, x_label="step", y_label=name, metric=name)))
    return charts


def _bars(view: Comparison) -> list[tuple[str, Markup]]:
    """Per test metric, the groups' scores with their intervals, a bar per attempt; the first
    chart is svg#compare-bars."""
    charts = []
    for k, (metric, groups) in enumerate(view.test_groups.items()):
        cells = view.test_values[metric]
        series = [BarSeries(c.label, [drawn(cells[g][i][0], metric) for g in groups],
                            [drawn(cells[g][i][1], metric) for g in groups]) for i, c in enumerate(view.columns)]
        ident = "compare-bars" if k == 0 else f"compare-bars-{k + 1}"
        charts.append((metric, interval_bars(groups, series, title=f"meta-test {metric} per group (95% interval)",
                                             y_label=axis_name(metric), element_id=ident, width=760)))
    if not charts:  # no meta-test yet: the chart says so
        charts.append(("", interval_bars([], [], title="meta-test scores per group", y_label="",
                                         element_id="compare-bars", width=760)))
    return charts
