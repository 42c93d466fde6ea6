"""The study page at `/studies/{name}`: an Optuna study's trials, its optimisation history and
its parameters in parallel coordinates (the page refreshes itself while a trial runs).

Why not Optuna Dashboard mounted here (a WSGI app)? It is not installed (it would be one more
dependency of `serve`), it writes to the study (notes, deleting trials) past this server's
sessions and CSRF checks, it would need its own exceptions to the pages' Content-Security-Policy,
and it knows trials, not the registry's attempts they ran as. The sweeper does keep an Optuna
storage (the registry's database by default): this page reads that storage itself, read only
(study_view.py), and links each trial to its attempt."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response

from metalearn.registry.errors import NotFound
from metalearn.web.charts.study import TrialPoint, history_chart, parallel_chart
from metalearn.web.pages import ViewerDep, fragment, render
from metalearn.web.study_view import MAXIMIZE, Study, study_of

router = APIRouter()
Name = Annotated[str, Path(max_length=255)]


@router.get("/studies/{name:path}")
def study_page(request: Request, viewer: ViewerDep, name: Name) -> Response:
    try:
        study = study_of(request.app.state.store, name)
    except NotFound as exc:
        return render("study.html", viewer, status_code=404, study=None, name=name, missing=str(exc))
    return render("study.html", viewer, study=study, name=name, missing=None, **_body(study))


@router.get("/parts/studies/{name:path}")
def study_body(request: Request, viewer: ViewerDep, name: Name) -> Response:
    """The trials table and charts alone: the page swaps them in every few seconds while a trial runs."""
    try:
        study = study_of(request.app.state.store, name)
    except NotFound as exc:
        return Response(str(exc), status_code=404, media_type="text/plain")
    return fragment("_study_body.html", active=study.active, study=study, **_body(study))


def _body(study: Study) -> dict[str, Any]:
    """The charts of the study, for the template."""
    points = [TrialPoint(t.number, t.value, t.params) for t in study.trials]
    maximize = study.direction == MAXIMIZE
    best = study.best
    return {"history": history_chart(points, metric=study.metric, maximize=maximize, width=760),
            "parallel": parallel_chart(points, study.params, metric=study.metric, maximize=maximize,
                                       width=max(760, 150 * (len(study.params) + 1)), height=380),
            "best": best}
