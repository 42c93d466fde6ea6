"""Reptile (Nichol et al. 2018): move the meta-weights toward each task's adapted weights.

As a pseudo-gradient, meta-weights minus adapted weights, so the configured outer optimizer
(plain SGD with lr = the outer step size, linearly annealed) takes the step.
"""
from __future__ import annotations

from typing import Any

import torch

from metalearn.algorithms.gradient import GradientLearner, TaskForward
from metalearn.algorithms.inner_loop import Params


class Reptile(GradientLearner):
    """phi <- phi + eps * mean_tasks(theta_task - phi)."""

    def task_forward(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any, yq: torch.Tensor,
                     functional: bool = False) -> TaskForward:
        fast, support_losses, out = self.adapt_and_predict(
            params, xs, ys, xq, self.inner_steps, functional=functional)
        with torch.no_grad():
            out_pre = self.predict(params, xs, xq)
        return TaskForward(self.objective.loss(out, yq), out, out_pre, support_losses, fast)

    def meta_gradient(self, forward: TaskForward, params: Params, batched: bool = False) -> Params:
        grads = {n: params[n].detach() - forward.fast[n].detach() for n in params}
        return {n: g.sum(0) for n, g in grads.items()} if batched else grads
