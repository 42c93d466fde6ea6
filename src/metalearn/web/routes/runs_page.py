"""The runs table at `/`: filter, sort, page; its rows again as a fragment for live updates."""
from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from sqlalchemy import select

from metalearn.registry import schema
from metalearn.registry.engine import read_tx
from metalearn.registry.store import Store
from metalearn.web.pages import ViewerDep, fragment, render
from metalearn.web.run_table import MAX_PER_PAGE, PER_PAGE, SORTS, Filters, Page, page_of

router = APIRouter()
A = schema.attempts
# The table's columns: (sort key, heading); None: not sortable.
COLUMNS = (("id", "id"), ("experiment", "experiment"), ("algorithm", "algorithm"), ("status", "status"),
           ("study", "study / trial"), ("started", "started (UTC)"), ("wall", "wall"),
           ("metric", "monitored metric"), ("score", "meta-test score"))


def _page(request: Request, experiment: str | None, status: list[str] | None, study: str | None,
          tag: str | None, algorithm: str | None, sort: str, order: str, page: int, per_page: int) -> Page:
    bad = sorted(set(status or []) - set(schema.STATUSES))
    if bad:
        raise HTTPException(422, f"unknown status {bad[0]!r}; one of {list(schema.STATUSES)}")
    if sort not in SORTS:
        raise HTTPException(422, f"sort must be one of {list(SORTS)}")
    filters = Filters(experiment=experiment or None, status=tuple(status or ()), study=study or None,
                      tag=tag or None, algorithm=algorithm or None)
    return page_of(request.app.state.store, filters, sort=sort, descending=order != "asc", page=page,
                   per_page=per_page)


Status = Annotated[list[str] | None, Query()]
Sort = Annotated[str, Query(max_length=16)]
Order = Annotated[str, Query(pattern="^(asc|desc)$")]
Number = Annotated[int, Query(ge=1, le=10**9)]
PerPage = Annotated[int, Query(ge=1, le=MAX_PER_PAGE)]
Text = Annotated[str | None, Query(max_length=255)]


@router.get("/")
def runs(request: Request, viewer: ViewerDep, experiment: Text = None, status: Status = None,
         study: Text = None, tag: Text = None, algorithm: Text = None, sort: Sort = "id",
         order: Order = "desc", page: Number = 1, per_page: PerPage = PER_PAGE) -> Response:
    table = _page(request, experiment, status, study, tag, algorithm, sort, order, page, per_page)
    store: Store = request.app.state.store
    return render("runs.html", viewer, table=table, columns=COLUMNS, statuses=schema.STATUSES,
                  experiments=_distinct(store, A.c.experiment), studies=_distinct(store, A.c.study),
                  link=_linker(table), query=request.url.query)


@router.get("/parts/runs")
def runs_rows(request: Request, viewer: ViewerDep, experiment: Text = None, status: Status = None,
              study: Text = None, tag: Text = None, algorithm: Text = None, sort: Sort = "id",
              order: Order = "desc", page: Number = 1, per_page: PerPage = PER_PAGE) -> Response:
    """The table body alone: the page's script swaps it in every few seconds while a row is active."""
    table = _page(request, experiment, status, study, tag, algorithm, sort, order, page, per_page)
    return fragment("_runs_rows.html", active=table.active, table=table)


def _distinct(store: Store, column) -> list[str]:  # noqa: ANN001
    """The values a filter can take (indexed columns: cheap at any registry size)."""
    with read_tx(store.engine) as conn:
        return sorted(v for (v,) in conn.execute(select(column).distinct().where(column.is_not(None))))


def _linker(table: Page):  # noqa: ANN202
    """A function giving the URL of this table with some parameters changed."""
    f = table.filters
    base = {"experiment": f.experiment, "status": list(f.status), "study": f.study, "tag": f.tag,
            "algorithm": f.algorithm, "sort": table.sort, "order": "desc" if table.descending else "asc",
            "page": table.page, "per_page": table.per_page}

    def link(**changes: object) -> str:
        params = {**base, **changes}
        return "/?" + urlencode({k: v for k, v in params.items() if v not in (None, "", [])}, doseq=True)

    return link
