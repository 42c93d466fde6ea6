"""The forms that change attempts: start a run (/start), meta-test a finished one
(/attempts/{id}/test) and cancel one. Each builds what the JSON API would get and passes it
through the API's own checks (the request validator, the launch check, the runner), so a page
queues nothing the API would refuse; a refusal shows the API's message beside its field."""
from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from metalearn.api.meta_test import meta_test_overrides, untestable
from metalearn.api.overrides import OverrideError, OverrideValidator
from metalearn.api.routes.attempt_path import AttemptId
from metalearn.api.runner import Conflict, QueueFull, Runner
from metalearn.registry.errors import NotFound
from metalearn.web.experiment_defaults import Defaults, defaults_of, experiments
from metalearn.web.form_fields import (
    LAYERS,
    SECTIONS,
    FormField,
    field_of,
    fields_for,
    layer_default,
    read_start,
)
from metalearn.web.forms import write_form
from metalearn.web.layer_kinds import layer_kinds, spec_text
from metalearn.web.meta_test_form import (
    FIELDS,
    GROUPS,
    NUMBERS,
    MetaTestPage,
    meta_test_page,
    read_meta_test,
    refused_field,
)
from metalearn.web.pages import SECURITY_HEADERS, SignedInDep, Viewer, render, sessions_of

log = logging.getLogger(__name__)
router = APIRouter()
ExperimentName = Annotated[str | None, Query(max_length=128)]


# ---- start a run ---------------------------------------------------------------------------------

@router.get("/start")
def start_page(request: Request, viewer: SignedInDep, experiment: ExperimentName = None) -> Response:
    validator: OverrideValidator = request.app.state.validator
    names = experiments(validator)
    chosen = experiment or (names[0] if names else "")
    try:
        defaults = defaults_of(validator, chosen)
    except OverrideError as exc:
        return _start(viewer, names, chosen, None, [], form_error=str(exc), status_code=422)
    return _start(viewer, names, chosen, defaults, fields_for(defaults, validator.settings, validator.groups))


@router.post("/start")
async def start_run(request: Request) -> Response:
    session, form = await write_form(request)
    viewer = Viewer(session, sessions_of(request).enabled)
    validator: OverrideValidator = request.app.state.validator
    runner: Runner = request.app.state.runner
    names = experiments(validator)
    experiment = form.get("experiment")
    try:
        defaults = await run_in_threadpool(defaults_of, validator, experiment)
    except OverrideError as exc:
        return _start(viewer, names, experiment, None, [], form_error=str(exc), status_code=422)
    fields = fields_for(defaults, validator.settings, validator.groups)
    submitted = read_start(form, defaults, fields)

    def again(status_code: int, form_error: str | None = None) -> Response:
        return _start(viewer, names, experiment, defaults, fields, values=submitted.values,
                      errors=submitted.errors, form_error=form_error, status_code=status_code)

    if submitted.errors:
        return again(422)
    try:
        await run_in_threadpool(validator.validate, experiment, submitted.overrides)
    except OverrideError as exc:
        key = field_of(str(exc), [f.key for f in fields] + [LAYERS])
        if key is None:
            return again(422, str(exc))
        submitted.errors[key] = str(exc)
        return again(422)
    try:
        attempt = await run_in_threadpool(runner.submit, experiment, submitted.overrides)
    except QueueFull as exc:
        return again(429, str(exc))
    log.info("page start: attempt %d, experiment %s, overrides %s", attempt, experiment, submitted.overrides)
    return RedirectResponse(f"/attempts/{attempt}", status_code=303, headers=SECURITY_HEADERS)


def _start(viewer: Viewer, names: list[str], experiment: str, defaults: Defaults | None,
           fields: list[FormField], *, values: dict[str, str] | None = None, errors: dict[str, str] | None = None,
           form_error: str | None = None, status_code: int = 200) -> Response:
    """The start form for experiment (its defaults, or the user's values and refusals)."""
    context: dict[str, Any] = {"experiments": names, "experiment": experiment, "sections": [],
                               "values": {}, "errors": errors or {}, "form_error": form_error,
                               "builder": None}
    if defaults is not None:
        context["values"] = {f.key: f.default_text for f in fields} | (values or {})
        context["sections"] = [(name, title, [f for f in fields if f.section == name and f.common],
                                [f for f in fields if f.section == name and not f.common])
                               for name, title in SECTIONS]
        context["builder"] = _builder(defaults, context["values"].get("model"), (values or {}).get(LAYERS))
    return render("start.html", viewer, status_code=status_code, **context)


def _builder(defaults: Defaults, model: str | None, sent: str | None) -> dict[str, Any]:
    """The layer builder's part of the page for the model chosen: kinds, the list it starts
    with (sent: the list submitted), each layer model's own list (what choosing it starts from)."""
    first = model if model in defaults.layer_lists else "layers" if "layers" in defaults.layer_lists else \
        next(iter(defaults.layer_lists), None)
    lists = {option: layer_default(defaults, option) for option in defaults.layer_lists}
    specs = lists.get(first) if first else []
    raw = json.dumps(specs) if sent is None else sent
    try:
        shown = json.loads(raw) if sent is not None else specs
    except (ValueError, RecursionError):  # shown as sent in the hidden field, with its refusal
        shown = []
    return {"kinds": layer_kinds(), "raw": raw, "visible": model in defaults.layer_lists,
            "entries": [(json.dumps(s), spec_text(s)) for s in shown] if isinstance(shown, list) else [],
            "models": " ".join(sorted(defaults.layer_lists)), "lists": json.dumps(lists)}


# ---- meta-test a finished attempt -------------------------------------------------------------

@router.get("/attempts/{attempt_id}/test")
def meta_test_form(attempt_id: AttemptId, request: Request, viewer: SignedInDep) -> Response:
    page = _test_page(request.app.state.runner, viewer, attempt_id)
    if isinstance(page, Response):
        return page
    return _meta_test(viewer, page, values={n: page.default_text(n) for n in FIELDS}, groups=page.heldout)


@router.post("/attempts/{attempt_id}/test")
async def meta_test(attempt_id: AttemptId, request: Request) -> Response:
    session, form = await write_form(request)
    viewer = Viewer(session, sessions_of(request).enabled)
    runner: Runner = request.app.state.runner
    page = await run_in_threadpool(_test_page, runner, viewer, attempt_id)
    if isinstance(page, Response):
        return page
    submitted = read_meta_test(form, page)

    def again(status_code: int) -> Response:
        return _meta_test(viewer, page, values=submitted.values, groups=submitted.groups,
                          errors=submitted.errors, status_code=status_code)

    if submitted.body is None:
        return again(422)
    try:
        overrides = await run_in_threadpool(runner.check.test_overrides, attempt_id,
                                            meta_test_overrides(submitted.body))
    except OverrideError as exc:
        submitted.errors[refused_field(str(exc))] = str(exc)
        return again(422)
    try:
        attempt = await run_in_threadpool(runner.submit, page.parent["experiment"], overrides, kind="test",
                                          parent_id=attempt_id)
    except QueueFull as exc:
        submitted.errors[""] = str(exc)
        return again(429)
    return RedirectResponse(f"/attempts/{attempt}", status_code=303, headers=SECURITY_HEADERS)


def _test_page(runner: Runner, viewer: Viewer, attempt_id: int) -> MetaTestPage | Response:
    """The meta-test form's page for the attempt, or the page saying why it has none (404: no
    such attempt; 409: not one a meta-test can start from)."""
    try:
        parent = runner.store.get_attempt(attempt_id)
    except NotFound as exc:
        return _refused(viewer, attempt_id, str(exc), 404)
    why = untestable(parent)
    if why:
        return _refused(viewer, attempt_id, why, 409)
    return meta_test_page(runner.check, parent)


def _meta_test(viewer: Viewer, page: MetaTestPage, *, values: dict[str, str], groups: list[str],
               errors: dict[str, str] | None = None, status_code: int = 200) -> Response:
    errors = errors or {}
    return render("test.html", viewer, status_code=status_code, page=page, parent=page.parent,
                  values=values, checked=set(groups), errors=errors, form_error=errors.get(""),
                  numbers=NUMBERS, groups_field=GROUPS)


# ---- cancel ---------------------------------------------------------------------------------------

@router.post("/attempts/{attempt_id}/cancel")
async def cancel(attempt_id: AttemptId, request: Request) -> Response:
    session, _form = await write_form(request)
    viewer = Viewer(session, sessions_of(request).enabled)
    runner: Runner = request.app.state.runner
    try:
        await run_in_threadpool(runner.cancel, attempt_id)
    except NotFound as exc:
        return _refused(viewer, attempt_id, str(exc), 404)
    except Conflict as exc:
        return _refused(viewer, attempt_id, str(exc), 409)
    return RedirectResponse(f"/attempts/{attempt_id}", status_code=303, headers=SECURITY_HEADERS)


def _refused(viewer: Viewer, attempt_id: int, message: str, status_code: int) -> Response:
    """The page saying why an attempt's form cannot be used (404: no such attempt; 409: not now)."""
    return render("refused.html", viewer, status_code=status_code, attempt_id=attempt_id, message=message,
                  exists=status_code != 404)
