"""MAML (Finn et al. 2017): the meta-gradient of the query loss after adaptation.

Second order differentiates through the inner steps; `first_order: true` is FOMAML, whose
meta-gradient is the query-loss gradient at the adapted weights.
"""
from __future__ import annotations

import torch

from metalearn.algorithms.base import MetaLearner
from metalearn.algorithms.inner_loop import Params
from metalearn.episode import Episode


class MAML(MetaLearner):
    """theta <- theta - beta * grad_theta L_query(adapt(theta, support))."""

    def __init__(self, *args, first_order: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.first_order = first_order

    def task_gradient(self, ep: Episode, params: Params) -> tuple[Params, dict[str, float]]:
        xs, xq = self.model.features(ep.support_x), self.model.features(ep.query_x)
        with torch.no_grad():
            loss_pre, acc_pre = self.loss_and_acc(params, xq, ep.query_y)
        fast, support_losses = self.adapt(xs, ep.support_y, params, self.inner_steps,
                                          first_order=self.first_order)
        loss, acc = self.loss_and_acc(fast, xq, ep.query_y)
        wrt = fast if self.first_order else params
        grads = torch.autograd.grad(loss, list(wrt.values()))
        return dict(zip(params, grads)), {
            "query_loss": loss.item(), "query_acc": acc.item(),
            "query_loss_pre": loss_pre.item(), "query_acc_pre": acc_pre.item(),
            "support_loss": support_losses[0].item()}
