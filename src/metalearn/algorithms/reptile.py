"""Reptile (Nichol et al. 2018): move the meta-weights toward each task's adapted weights.

As a pseudo-gradient, meta-weights minus adapted weights, so the configured outer optimizer
(plain SGD with lr = the outer step size, linearly annealed) takes the step.
"""
from __future__ import annotations

from typing import Any

import torch

from metalearn.algorithms.gradient import GradientLearner, TaskForward
from metalearn.algorithms.inner_loop import Params
from metalearn.models.norm import support_statistics


class Reptile(GradientLearner):
    """phi <- phi + eps * mean_tasks(theta_task - phi).

    train_on_query: meta-training inner steps alternate between the support and the query
    set (support, query, support, ...) instead of all taking the support. Nichol et al. (sec. 5)
    show that Reptile's gain over joint training comes from successive inner steps seeing
    different minibatches (it maximises the inner product of their gradients, so that a step
    on some of a task's examples helps on the others); steps on one support set only reward
    fitting that set. At meta-test the query is unseen and adaptation takes the support only.
    """

    def __init__(self, *args: Any, train_on_query: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.train_on_query = train_on_query

    def task_forward(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any, yq: torch.Tensor,
                     functional: bool = False) -> TaskForward:
        if self.train_on_query:
            fast, support_losses = self.adapt_alternating(params, xs, ys, xq, yq, functional)
            out = self.predict(fast, xs, xq)
        else:
            fast, support_losses, out = self.adapt_and_predict(
                params, xs, ys, xq, self.inner_steps, functional=functional)
        return TaskForward(self.objective.loss(out, yq), out, support_losses, fast)

    def adapt_alternating(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any,
                          yq: torch.Tensor, functional: bool = False
                          ) -> tuple[Params, list[torch.Tensor]]:
        """`inner_steps` SGD steps taking the support and the query set in turn; the fast
        weights and each step's loss (on the set it took)."""
        fast, losses = params, []
        for step in range(self.inner_steps):
            x, y = (xs, ys) if step % 2 == 0 else (xq, yq)
            # Batch statistics of the set the step takes, also under vmap_tasks (where they
            # would otherwise come from the first len(support) rows).
            with support_statistics(self.model.top, len(y)):
                fast, loss = self.adapt_support(fast, x, y, 1, functional=functional)
            losses += loss
        return fast, losses

    def meta_gradient(self, forward: TaskForward, params: Params, batched: bool = False) -> Params:
        grads = {n: params[n].detach() - forward.fast[n].detach() for n in params}
        return {n: g.sum(0) for n, g in grads.items()} if batched else grads
