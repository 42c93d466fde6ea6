"""The reads that follow attempts: list them, show one, page through its metrics. They need the
token only where the server listens off loopback (create_app adds that check and its answers)."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from metalearn.api import responses as r
from metalearn.api.models import Attempt, AttemptSummary, MetricsPage
from metalearn.api.routes.app_state import StoreDep
from metalearn.api.routes.attempt_path import MAX_ID, AttemptId, found
from metalearn.registry import report, schema

router = APIRouter()


@router.get("/runs", tags=["runs"], response_model=list[AttemptSummary],
            response_model_exclude_unset=True, summary="List attempts",
            response_description="Attempts, newest first",
            description="Newest first, without their configs; filter by `status` (repeatable), "
                        "`experiment` and `algorithm`, at most `limit` rows.",
            responses={**r.INVALID})
def list_runs(
    store: StoreDep,
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


@router.get("/runs/{attempt_id}", tags=["runs"], response_model=Attempt,
            response_model_exclude_unset=True, summary="Show an attempt",
            response_description="The attempt",
            description="Its row, composed config, a summary of each metric and its test results.",
            responses={**r.NOT_FOUND, **r.INVALID})
def get_run(attempt_id: AttemptId, store: StoreDep) -> dict[str, Any]:
    return found(report.show, store, attempt_id)


@router.get("/runs/{attempt_id}/metrics", tags=["runs"],
            response_model=MetricsPage, response_model_exclude_unset=True,
            summary="Follow an attempt's metrics",
            response_description="A page of new metric rows",
            description="Metric rows logged after `after_step` (all when omitted), optionally "
                        "only those named `name`, whole steps only, at most `limit` rows. Pass "
                        "each page's `last_step` back as `after_step` to see every row once "
                        "while the attempt runs.",
            responses={**r.NOT_FOUND, **r.INVALID})
def get_metrics(
    attempt_id: AttemptId,
    store: StoreDep,
    name: str | None = None,
    after_step: int | None = Query(None, ge=-1, le=MAX_ID),
    limit: int = Query(10_000, ge=1, le=100_000),
) -> dict[str, Any]:
    """New metric rows: pass last_step back as after_step to follow an attempt live."""
    return found(report.follow, store, attempt_id, name=name, after_step=after_step, limit=limit)
