"""Reptile (Nichol et al. 2018): move the meta-weights toward each task's adapted weights.

As a pseudo-gradient, meta-weights minus adapted weights, so the configured outer optimizer
(plain SGD with lr = the outer step size, linearly annealed) takes the step.
"""
from __future__ import annotations

import torch

from metalearn.algorithms.gradient import GradientLearner
from metalearn.algorithms.inner_loop import Params
from metalearn.data.episode import Episode


class Reptile(GradientLearner):
    """phi <- phi + eps * mean_tasks(theta_task - phi)."""

    def task_gradient(self, ep: Episode, params: Params) -> tuple[Params, dict[str, float]]:
        xs, xq = self.model.features(ep.support_x), self.model.features(ep.query_x)
        fast, support_losses, out = self.adapt_and_predict(
            params, xs, ep.support_y, xq, self.inner_steps)
        with torch.no_grad():
            out_pre = self.predict(params, xs, xq)
        grads = {n: params[n].detach() - fast[n].detach() for n in params}
        return grads, self.task_scores(ep, out_pre, out.detach(), support_losses)
