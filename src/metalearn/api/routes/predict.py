"""POST /runs/{id}/predict: a completed attempt's checkpoint adapted to the support set in the
request, its predictions for the request's queries, answered synchronously.

The same path as `metalearn predict` (inference/predict.py: the checkpoint's own algorithm
adapts as at meta-test). Only a checkpoint the server's registry recorded under its own log
folder is loaded (`LaunchCheck.checkpoint`, as for a meta-test). The meta-trained module is
loaded once and kept in the app's bounded least-recently-used `CheckpointCache`; each request
builds its adapted model from it and drops it, holding the module's lock (one adaptation at a
time per module; its weights are never written). Everything the request can get wrong is
answered 422 before the model runs, naming the key (`support[3].text`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status

from metalearn.api import responses as r
from metalearn.api.models import Predictions, PredictRequest
from metalearn.api.overrides import OverrideError
from metalearn.api.routes.app_state import RunnerDep, StoreDep
from metalearn.api.routes.attempt_path import AttemptId, found
from metalearn.inference import loading
from metalearn.inference.cache import CheckpointCache
from metalearn.inference.errors import CheckpointError, ExamplesError
from metalearn.inference.inputs import inputs_of
from metalearn.inference.json_rows import examples_from_rows, json_inputs
from metalearn.inference.predict import predict
from metalearn.inference.run_checkpoint import find_checkpoint
from metalearn.registry import schema

BUILT_FROM = ("data", "model", "objective", "algorithm")  # the stored config sections a module needs
KINDS = {"text": "a text", "image": "an image", "numbers": "a numbers"}
router = APIRouter()


def _cache(request: Request) -> CheckpointCache:
    return request.app.state.predict_cache


CacheDep = Annotated[CheckpointCache, Depends(_cache)]


@router.post("/runs/{attempt_id}/predict", tags=["runs"], response_model=Predictions,
             response_model_exclude_unset=True, summary="Predict with an attempt's checkpoint",
             response_description="One prediction per query row, in the request's order",
             description="Adapts the completed attempt's checkpoint to the support rows exactly as "
                         "its algorithm adapts at meta-test, and answers one prediction per query "
                         "row: the class and each class's probability (regression: the value). "
                         "Rows are `{\"text\": ..., \"label\": ...}` for a text model, "
                         "`{\"x\": [numbers], \"label\": ...}` for a numbers model; image models are "
                         "refused (a JSON row carries no image). Labels are the request's own "
                         "strings. The meta-trained weights are loaded once and cached "
                         "(`metalearn serve --predict-cache N` checkpoints, least recently used "
                         "out); the adapted model is dropped after each request.",
             responses={**r.AUTH, **r.NOT_FOUND,
                        **r.conflict("The attempt has not completed, or its checkpoint is missing, "
                                     "unusable or not under this server's log folder."),
                        **r.INVALID})
def predict_run(attempt_id: AttemptId, body: PredictRequest, store: StoreDep, runner: RunnerDep,
                cache: CacheDep) -> dict[str, Any]:
    attempt = found(store.get_attempt, attempt_id)
    path = _checkpoint(attempt, runner.check.checkpoint)
    config = attempt.get("config") or {}
    missing = [k for k in BUILT_FROM if not isinstance(config.get(k), dict)]
    if missing:
        raise HTTPException(status.HTTP_409_CONFLICT, f"attempt {attempt_id}'s stored config lacks "
                                                      f"{', '.join(missing)}: no module to rebuild")
    inputs = inputs_of(config)
    model = f"attempt {attempt_id} ({KINDS[inputs.kind]} model)"
    try:
        rows = json_inputs(inputs, model)
        support = examples_from_rows([row.model_dump(exclude_none=True) for row in body.support],
                                     key="support", inputs=rows, labelled=True, model=model)
        query = examples_from_rows([row.model_dump(exclude_none=True) for row in body.query],
                                   key="query", inputs=rows, labelled=False, model=model)
    except ExamplesError as exc:
        raise HTTPException(422, str(exc)) from exc
    try:
        loaded = cache.get(path, lambda: loading.load_checkpoint(
            find_checkpoint(str(attempt_id), _Recorded(store, {**attempt, "ckpt_path": str(path)}))))
    except CheckpointError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    try:
        with loaded.lock:  # one adaptation at a time on this module (predict swaps its objective)
            result = predict(dataclasses.replace(loaded, inputs=rows), support, query, labels=body.labels)
    except ExamplesError as exc:  # the classes against the head, a query label the support lacks
        raise HTTPException(422, str(exc)) from exc
    probabilities = None if result.probabilities is None else result.probabilities.tolist()
    predictions = []
    for i, value in enumerate(result.predicted):
        row: dict[str, Any] = {"predicted": value}
        if probabilities is not None:
            row["probabilities"] = dict(zip(result.classes, probabilities[i], strict=True))
        if query.labels is not None:
            row["label"] = query.labels[i]
        predictions.append(row)
    return {"id": attempt_id, "classes": result.classes, "predictions": predictions,
            "adapted": result.adapted, "metric": result.metric, "score": result.score}


def _checkpoint(attempt: dict[str, Any], under_logs: Callable[[dict[str, Any]], str]) -> Path:
    """The completed attempt's checkpoint file, if it is under the server's log folder; else 409."""
    if attempt["status"] != schema.COMPLETED or not attempt["ckpt_path"]:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"attempt {attempt['id']} is {attempt['status']} with "
                            f"{'a' if attempt['ckpt_path'] else 'no'} checkpoint; only a completed "
                            "attempt with a checkpoint can predict")
    try:
        return Path(under_logs(attempt))
    except OverrideError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc


@dataclasses.dataclass(frozen=True)
class _Recorded:
    """The registry as `find_checkpoint` reads it, with the attempt's checkpoint path as the
    server resolved and checked it."""

    store: Any
    attempt: dict[str, Any]

    def get_attempt(self, attempt_id: int) -> dict[str, Any]:
        return self.attempt

    def list_attempts(self, **filters: Any) -> list[dict[str, Any]]:
        return [self.attempt]

    def test_results(self, attempt_id: int) -> list[dict[str, Any]]:
        return self.store.test_results(attempt_id)
