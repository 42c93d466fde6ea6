"""Episodic evaluation: an episode's query predictions after adapting, and its record.

An evaluation episode adapts a copy of the meta-weights on its support set (gradients on,
whatever Lightning's evaluation loop turned off), predicts its query set in chunks with the
adapted weights and with the meta-weights, and becomes a record: its score, before adapting
too where that exists, and the interval over its query examples. `algorithms.group_scores`
aggregates the records per group; `algorithms.step_scores` scores a meta-test episode after
several step counts along one adaptation (`algorithm.eval_score_steps`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch

from metalearn.algorithms.inner_loop import Params
from metalearn.data.episode import Episode
from metalearn.objectives import Objective

if TYPE_CHECKING:
    from metalearn.algorithms.episodic import EpisodicModule

# Adapts meta-parameters on a support set: (params, support inputs, targets, steps) ->
# (fast weights, support losses).
Adapt = Callable[[Params, Any, torch.Tensor, int], tuple[Params, list[torch.Tensor]]]


def require_gradients() -> None:
    """Refuse to evaluate under `torch.inference_mode`, where adapting cannot take gradients."""
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "evaluation adapts on the support set and needs gradients, but Lightning runs it "
            "under torch.inference_mode: build the Trainer with inference_mode=False")


def adapted_predictions(learner: EpisodicModule, ep: Episode, adapt: Adapt,
                        steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query predictions after `adapt`ing a copy of the meta-weights on the support set for
    `steps`, and with the meta-weights themselves (the meta-weights never change)."""
    require_gradients()
    params = learner.meta_parameters()
    xs = learner.model.features(ep.support_x)
    with torch.enable_grad():
        fast, _ = adapt(params, xs, ep.support_y, steps)
    post, pre = predictions_with(learner, ep, xs, [fast, params])
    return post, pre


def predictions_with(learner: EpisodicModule, ep: Episode, xs: Any,
                     weights: Sequence[Params]) -> list[torch.Tensor]:
    """The query's predictions (shaped like `query_y`) with each of `weights`, in the chunks
    of `learner.query_chunks`: each chunk's trunk features are computed once for all of them."""
    out = [torch.empty_like(ep.query_y) for _ in weights]
    predictions = learner.objective.predictions
    with torch.no_grad():  # .to: under autocast (bf16-mixed) regression outputs are bfloat16
        for rows, chunk in learner.query_chunks(ep):
            xq = learner.model.features(chunk)
            for pred, w in zip(out, weights, strict=True):
                pred[rows] = predictions(learner.predict(w, xs, xq)).to(pred.dtype)
    return out


def episode_record(objective: Objective, ep: Episode, pred: torch.Tensor,
                   pred_pre: torch.Tensor | None) -> dict[str, Any]:
    """An episode's record from its query predictions (pred_pre: before adapting, None where
    nothing adapts)."""
    rows = objective.example_scores(pred, ep.query_y)  # [Q]
    pre = None if pred_pre is None else objective.example_scores(pred_pre, ep.query_y)
    return {"group": ep.group, "family": ep.family, "value": rows.mean().item(),
            "value_pre": None if pre is None else pre.mean().item(),
            "ci95_examples": objective.episode_ci95(rows),
            "shots": ep.shots, "queries": ep.queries}
