"""The page of one attempt at `/attempts/{id}`, and its live parts (status, facts, curves,
meta-test, log tail) as fragments that the page's script swaps in while the attempt is queued or runs."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from metalearn.api.routes.attempt_path import AttemptId
from metalearn.registry import report
from metalearn.registry.errors import NotFound
from metalearn.registry.store import Store
from metalearn.web import run_view as view
from metalearn.web.pages import Viewer, ViewerDep, fragment, render
from metalearn.web.run_table import wall_seconds
from metalearn.web.sessions import CSRF_FIELD

router = APIRouter()


def _row(request: Request, attempt_id: int) -> dict[str, Any] | None:
    try:
        return request.app.state.store.get_attempt(attempt_id)
    except NotFound:
        return None


def _state(row: dict[str, Any]) -> dict[str, Any]:
    """What the status part shows: the row, whether it may change, its wall time."""
    return {"row": row, "live": view.is_live(row["status"]), "wall_s": wall_seconds(row["started_at"], row["ended_at"])}


def _missing(viewer: Viewer, attempt_id: int) -> Response:
    return render("_run_missing.html", viewer, status_code=404, attempt_id=attempt_id)


@router.get("/attempts/{attempt_id}")
def run_page(request: Request, viewer: ViewerDep, attempt_id: AttemptId) -> Response:
    row = _row(request, attempt_id)
    if row is None:
        return _missing(viewer, attempt_id)
    store: Store = request.app.state.store
    objective, _mode = report.objective_of(row["config"])
    return render("run.html", viewer, **_state(row), **_facts(request, row), objective=objective,
                  children=view.children(store, attempt_id, objective),
                  curves=view.curve_charts(store, attempt_id), metrics=view.metric_rows(store, attempt_id),
                  test=view.meta_test_view(store.test_results(attempt_id), objective),
                  log=view.log_tail(row, request.app.state.runner), config=view.config_tree(row["config"]),
                  environment=view.config_tree(row["environment"]))


def _facts(request: Request, row: dict[str, Any]) -> dict[str, Any]:
    """What the facts card shows beside the row: its parent, study link and command (the
    card is live: host, commit, checkpoint and TensorBoard name arrive as the attempt runs)."""
    return {"study_link": view.study_link(row["study"]) if row["study"] else None,
            "parent": _row(request, row["parent_id"]) if row["parent_id"] else None,
            "command": view.command_text(row["command"])}


def _part(request: Request, viewer: Viewer, attempt_id: int, template: str,
          parts: Callable[[Store, dict[str, Any]], dict[str, Any]]) -> Response:
    """A fragment of the page with what parts(store, row) gives; 404 (and no more polling) for
    an attempt that does not exist."""
    row = _row(request, attempt_id)
    if row is None:
        response = fragment("_run_gone.html", active=False, attempt_id=attempt_id)
        response.status_code = 404
        return response
    return fragment(template, active=view.is_live(row["status"]), viewer=viewer, csrf_field=CSRF_FIELD, **_state(row),
                    **parts(request.app.state.store, row))


@router.get("/attempts/{attempt_id}/parts/status")
def status_part(request: Request, viewer: ViewerDep, attempt_id: AttemptId) -> Response:
    return _part(request, viewer, attempt_id, "_run_status.html", lambda _store, _row: {})


@router.get("/attempts/{attempt_id}/parts/facts")
def facts_part(request: Request, viewer: ViewerDep, attempt_id: AttemptId) -> Response:
    return _part(request, viewer, attempt_id, "_run_facts.html", lambda _store, row: _facts(request, row))


@router.get("/attempts/{attempt_id}/parts/curves")
def curves_part(request: Request, viewer: ViewerDep, attempt_id: AttemptId) -> Response:
    return _part(request, viewer, attempt_id, "_run_curves.html",
                 lambda store, row: {"curves": view.curve_charts(store, row["id"])})


@router.get("/attempts/{attempt_id}/parts/test")
def test_part(request: Request, viewer: ViewerDep, attempt_id: AttemptId) -> Response:
    return _part(request, viewer, attempt_id, "_run_test.html", lambda store, row: {
        "test": view.meta_test_view(store.test_results(row["id"]), report.objective_of(row["config"])[0])})


@router.get("/attempts/{attempt_id}/parts/log")
def log_part(request: Request, viewer: ViewerDep, attempt_id: AttemptId) -> Response:
    return _part(request, viewer, attempt_id, "_run_log.html",
                 lambda _store, row: {"log": view.log_tail(row, request.app.state.runner)})
