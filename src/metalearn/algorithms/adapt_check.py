"""Test-time adaptation that may decline: adapt only where it helped on held-out support rows.

Adapting to a held-out domain's support set can lower accuracy: the support pulls the weights
somewhere the domain's queries do not follow. Before adapting, the support set is split in two
class-balanced folds; each fold adapts the meta-weights and the other scores them, with and
without adapting. Only if adapting lowered that held-out loss (summed over both folds) does the
whole support set adapt the weights; otherwise the query is predicted with the meta-weights.
The query is never looked at. The check costs two more adaptations per evaluation episode.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from metalearn.algorithms.inner_loop import Params
from metalearn.data.batches import take_rows

if TYPE_CHECKING:
    from metalearn.algorithms.episodic import EpisodicModule
    from metalearn.algorithms.evaluation import Adapt


def support_folds(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The support rows in two folds: each class's rows dealt to fold 0 and 1 in turn (rows in
    order for regression targets), so both folds hold every class that has two examples."""
    if y.is_floating_point():
        groups = [torch.arange(len(y))]
    else:
        groups = [torch.nonzero(y == c).flatten() for c in torch.unique(y)]
    return (torch.cat([g[0::2] for g in groups]), torch.cat([g[1::2] for g in groups]))


def adaptation_gain(learner: EpisodicModule, adapt: Adapt, params: Params, xs: Any,
                    ys: torch.Tensor, steps: int) -> float:
    """How much adapting lowers the loss on held-out support rows, summed over both folds
    (positive: adapting helped); infinite where a fold is empty (one example per class: there
    is nothing to hold out, so nothing speaks against adapting)."""
    gain = 0.0
    loss = learner.objective.loss
    first, second = support_folds(ys)
    if len(second) == 0:
        return float("inf")
    for train, held in ((first, second), (second, first)):
        x_train, x_held = take_rows(xs, train), take_rows(xs, held)
        fast, _ = adapt(params, x_train, ys[train], steps)
        with torch.no_grad():
            before = loss(learner.predict(params, x_train, x_held), ys[held])
            after = loss(learner.predict(fast, x_train, x_held), ys[held])
        gain += (before - after).item()
    return gain


def checked(learner: EpisodicModule, adapt: Adapt, decisions: list[bool] | None = None,
            strict: bool = False) -> Adapt:
    """`adapt`, declining (the meta-weights unchanged, no steps) where `adaptation_gain` is not
    positive; each decision (True: adapted) is appended to `decisions` where given.

    strict: where a fold would be empty (one example per class), so nothing can be held out,
    keep the meta-weights (True) rather than adapt unchecked (False).
    """

    def run(params: Params, xs: Any, ys: torch.Tensor, steps: int
            ) -> tuple[Params, list[torch.Tensor]]:
        gain = adaptation_gain(learner, adapt, params, xs, ys, steps)
        adapts = (not strict) if gain == float("inf") else gain > 0  # inf: nothing held out
        if decisions is not None:
            decisions.append(adapts)
        if adapts:
            return adapt(params, xs, ys, steps)
        return {n: p.detach() for n, p in params.items()}, []

    return run
