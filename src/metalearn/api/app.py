"""The HTTP API over the registry: start, meta-test, cancel and follow attempts."""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text

from metalearn.api import responses as r
from metalearn.api.auth import TokenCheck, no_check
from metalearn.api.docs import DESCRIPTION, TAGS, add_docs
from metalearn.api.gate import MAX_BODY, RequestGate
from metalearn.api.models import (
    Attempt,
    AttemptSummary,
    Cancelled,
    Health,
    MetricsPage,
    Queued,
    RunRequest,
    TestQueued,
    TestRequest,
)
from metalearn.api.overrides import OverrideError, OverrideValidator
from metalearn.api.runner import Conflict, QueueFull, Runner
from metalearn.registry import report, schema
from metalearn.registry.errors import NotFound
from metalearn.registry.store import Store

log = logging.getLogger(__name__)
MAX_ID = 2**63 - 1  # the registry's integer columns; larger ids and steps cannot exist
RETRY_AFTER_S = 30
AttemptId = Annotated[int, Path(ge=1, le=MAX_ID, description="an attempt id")]


def create_app(
    store: Store,
    runner: Runner,
    validator: OverrideValidator,
    *,
    token: str | None,
    token_for_reads: bool = False,
) -> FastAPI:
    """The FastAPI app; writes always need the bearer token, reads too when token_for_reads."""
    tokens = TokenCheck(token)
    write = Depends(tokens)
    read = Depends(tokens if token_for_reads else no_check)
    app = FastAPI(title="metalearn", description=DESCRIPTION, openapi_tags=TAGS,
                  docs_url=None, redoc_url=None)
    add_docs(app)
    reads = r.guarded(token_for_reads)
    app.state.store, app.state.runner = store, runner

    # A write's token before its body, and every body counted as it is read (gate.py).
    app.add_middleware(RequestGate, check=tokens, max_body=MAX_BODY)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        """422 with where and what, never the input itself (it may be huge, or a secret)."""
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200],
                   "type": e.get("type")} for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, status_code=422)

    @app.get("/health", tags=["server"], response_model=Health, summary="Is the server up",
             response_description="The registry answered",
             description="Open to anyone: the registry answers a query; how many attempts run.")
    def health() -> dict[str, Any]:
        with store.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "schema_version": schema.SCHEMA_VERSION,
                "running": len(runner.children), "max_parallel": runner.max_parallel,
                "max_queued": runner.max_queued}

    @app.post("/runs", status_code=status.HTTP_202_ACCEPTED, dependencies=[write], tags=["runs"],
              response_model=Queued, summary="Start a training attempt",
              description="Validates the experiment and overrides against the project's config, "
                          "then queues the attempt; the server starts it when a slot is free.",
              responses={202: {"description": "Queued"}, **r.AUTH, **r.INVALID, **r.QUEUE_FULL})
    def start_run(body: RunRequest) -> dict[str, Any]:
        _refuse(validator.validate, body.experiment, body.overrides)
        attempt = _submit(runner, body.experiment, body.overrides)
        return {"id": attempt, "status": schema.QUEUED}

    @app.post("/runs/{attempt_id}/test", status_code=status.HTTP_202_ACCEPTED, dependencies=[write],
              tags=["runs"], response_model=TestQueued, summary="Meta-test an attempt's checkpoint",
              description="Queues a test attempt that loads the completed attempt's checkpoint and "
                          "meta-tests it with the given shots, queries, episodes and domains (the "
                          "attempt's own settings for those not given).",
              responses={202: {"description": "Queued"}, **r.AUTH, **r.NOT_FOUND,
                         **r.conflict("The attempt has not completed, or has no checkpoint."),
                         **r.INVALID, **r.QUEUE_FULL})
    def test_run(attempt_id: AttemptId, body: TestRequest) -> dict[str, Any]:
        parent = _get(store.get_attempt, attempt_id)
        if parent["status"] != schema.COMPLETED or not parent["ckpt_path"]:
            raise HTTPException(status.HTTP_409_CONFLICT,
                                f"attempt {attempt_id} is {parent['status']} with "
                                f"{'a' if parent['ckpt_path'] else 'no'} checkpoint; "
                                "only a completed attempt with a checkpoint can be meta-tested")
        overrides = _refuse(runner.check.test_overrides, attempt_id, _test_overrides(body))
        attempt = _submit(runner, parent["experiment"], overrides, kind="test", parent_id=attempt_id)
        return {"id": attempt, "status": schema.QUEUED, "parent_id": attempt_id}

    @app.post("/runs/{attempt_id}/cancel", status_code=status.HTTP_202_ACCEPTED, dependencies=[write],
              tags=["runs"], response_model=Cancelled, summary="Cancel an attempt",
              description="A queued attempt is marked interrupted at once; a running one is sent "
                          "SIGTERM and is recorded as interrupted when its process ends.",
              responses={202: {"description": "Cancelled or cancelling"}, **r.AUTH, **r.NOT_FOUND,
                         **r.conflict("The attempt has already ended, or runs outside this server."),
                         **r.INVALID})
    def cancel_run(attempt_id: AttemptId) -> dict[str, Any]:
        try:
            return {"id": attempt_id, "status": runner.cancel(attempt_id)}
        except NotFound as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        except Conflict as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc

    @app.get("/runs", dependencies=[read], tags=["runs"], response_model=list[AttemptSummary],
             response_model_exclude_unset=True, summary="List attempts",
             response_description="Attempts, newest first",
             description="Newest first, without their configs; filter by `status` (repeatable), "
                         "`experiment` and `algorithm`, at most `limit` rows.",
             responses={**reads, **r.INVALID})
    def list_runs(
        status_: Annotated[list[str] | None, Query(alias="status")] = None,
        experiment: str | None = None,
        algorithm: str | None = None,
        limit: int = Query(100, ge=1, le=10_000),
    ) -> list[dict[str, Any]]:
        bad = sorted(set(status_ or []) - set(schema.STATUSES))
        if bad:
            raise HTTPException(422, f"unknown status; one of {list(schema.STATUSES)}")
        rows = store.list_attempts(status=status_, experiment=experiment, algorithm=algorithm, limit=limit)
        return report.jsonable(rows)

    @app.get("/runs/{attempt_id}", dependencies=[read], tags=["runs"], response_model=Attempt,
             response_model_exclude_unset=True, summary="Show an attempt",
             response_description="The attempt",
             description="Its row, composed config, a summary of each metric and its test results.",
             responses={**reads, **r.NOT_FOUND, **r.INVALID})
    def get_run(attempt_id: AttemptId) -> dict[str, Any]:
        return _get(report.show, store, attempt_id)

    @app.get("/runs/{attempt_id}/metrics", dependencies=[read], tags=["runs"],
             response_model=MetricsPage, response_model_exclude_unset=True,
             summary="Follow an attempt's metrics",
             response_description="A page of new metric rows",
             description="Metric rows logged after `after_step` (all when omitted), optionally "
                         "only those named `name`, whole steps only, at most `limit` rows. Pass "
                         "each page's `last_step` back as `after_step` to see every row once "
                         "while the attempt runs.",
             responses={**reads, **r.NOT_FOUND, **r.INVALID})
    def get_metrics(
        attempt_id: AttemptId,
        name: str | None = None,
        after_step: int | None = Query(None, ge=-1, le=MAX_ID),
        limit: int = Query(10_000, ge=1, le=100_000),
    ) -> dict[str, Any]:
        """New metric rows: pass last_step back as after_step to follow an attempt live."""
        return _get(report.follow, store, attempt_id, name=name, after_step=after_step, limit=limit)

    return app


def _refuse(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args), with an OverrideError as 422 and its message."""
    try:
        return fn(*args)
    except OverrideError as exc:
        raise HTTPException(422, str(exc)) from exc


def _submit(runner: Runner, experiment: str | None, overrides: list[str], **kwargs: Any) -> int:
    """Queue an attempt; a full queue is 429 with Retry-After."""
    try:
        return runner.submit(experiment, overrides, **kwargs)
    except QueueFull as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc),
                            headers={"Retry-After": str(RETRY_AFTER_S)}) from exc


def _get(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs), with a missing attempt as 404."""
    try:
        return fn(*args, **kwargs)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


def _test_overrides(body: TestRequest) -> list[str]:
    """data.* overrides for the meta-test settings that were given."""
    out = []
    for key, value in (("data.shots", body.shots), ("data.queries", body.queries),
                       ("data.test_episodes", body.episodes)):
        if value is not None:
            out.append(f"{key}={value}")
    if body.domains:
        out.append(f"data.heldout=[{','.join(body.domains)}]")
    return out
