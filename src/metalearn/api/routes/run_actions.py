"""The requests that change attempts: start one, meta-test one, cancel one. Each needs the
bearer token (create_app adds the check to the whole router)."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, status

from metalearn.api import responses as r
from metalearn.api.meta_test import meta_test_overrides, untestable
from metalearn.api.models import Cancelled, Queued, RunRequest, TestQueued, TestRequest
from metalearn.api.overrides import OverrideError
from metalearn.api.routes.app_state import RunnerDep, StoreDep, ValidatorDep
from metalearn.api.routes.attempt_path import AttemptId, found
from metalearn.api.runner import Conflict, QueueFull, Runner
from metalearn.registry import schema
from metalearn.registry.errors import NotFound

RETRY_AFTER_S = 30
router = APIRouter()


@router.post("/runs", status_code=status.HTTP_202_ACCEPTED, tags=["runs"],
             response_model=Queued, summary="Start a training attempt",
             description="Validates the experiment and overrides against the project's config, "
                         "then queues the attempt; the server starts it when a slot is free.",
             responses={202: {"description": "Queued"}, **r.AUTH, **r.INVALID, **r.QUEUE_FULL})
def start_run(body: RunRequest, runner: RunnerDep, validator: ValidatorDep) -> dict[str, Any]:
    _refuse(validator.validate, body.experiment, body.overrides)
    attempt = _submit(runner, body.experiment, body.overrides)
    return {"id": attempt, "status": schema.QUEUED}


@router.post("/runs/{attempt_id}/test", status_code=status.HTTP_202_ACCEPTED,
             tags=["runs"], response_model=TestQueued, summary="Meta-test an attempt's checkpoint",
             description="Queues a test attempt that loads the completed attempt's checkpoint and "
                         "meta-tests it with the given shots, queries, episodes, adaptation steps and "
                         "domains (the attempt's own settings for those not given).",
             responses={202: {"description": "Queued"}, **r.AUTH, **r.NOT_FOUND,
                        **r.conflict("The attempt has not completed, or has no checkpoint."),
                        **r.INVALID, **r.QUEUE_FULL})
def test_run(attempt_id: AttemptId, body: TestRequest, store: StoreDep, runner: RunnerDep) -> dict[str, Any]:
    parent = found(store.get_attempt, attempt_id)
    why = untestable(parent)
    if why:
        raise HTTPException(status.HTTP_409_CONFLICT, why)
    overrides = _refuse(runner.check.test_overrides, attempt_id, meta_test_overrides(body))
    attempt = _submit(runner, parent["experiment"], overrides, kind="test", parent_id=attempt_id)
    return {"id": attempt, "status": schema.QUEUED, "parent_id": attempt_id}


@router.post("/runs/{attempt_id}/cancel", status_code=status.HTTP_202_ACCEPTED,
             tags=["runs"], response_model=Cancelled, summary="Cancel an attempt",
             description="A queued attempt is marked interrupted at once; a running one is sent "
                         "SIGTERM and is recorded as interrupted when its process ends.",
             responses={202: {"description": "Cancelled or cancelling"}, **r.AUTH, **r.NOT_FOUND,
                        **r.conflict("The attempt has already ended, or runs outside this server."),
                        **r.INVALID})
def cancel_run(attempt_id: AttemptId, runner: RunnerDep) -> dict[str, Any]:
    try:
        return {"id": attempt_id, "status": runner.cancel(attempt_id)}
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    except Conflict as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


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
