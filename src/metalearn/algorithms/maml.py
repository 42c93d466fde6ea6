"""MAML (Finn et al. 2017): the meta-gradient of the query loss after adaptation.

Second order differentiates through the inner steps (`torch.func.functional_call` on any
module, a Hugging Face encoder included); `first_order: true` is FOMAML, whose meta-gradient is
the query-loss gradient at the adapted weights. `learn_inner_lr: true` is Meta-SGD (Li et al.
2017): one learned inner step size per parameter entry, meta-learned with the weights.
"""
from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from metalearn.algorithms.gradient import GradientLearner, TaskForward
from metalearn.algorithms.inner_loop import Params


class MAML(GradientLearner):
    """theta <- theta - beta * grad_theta L_query(adapt(theta, support))."""

    def __init__(self, *args, first_order: bool = False, learn_inner_lr: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if learn_inner_lr and first_order:
            raise ValueError("algorithm.learn_inner_lr (Meta-SGD) learns the step sizes through "
                             "the inner steps: it needs algorithm.first_order=false")
        if learn_inner_lr and self.eval_inner_lr is not None:
            raise ValueError("algorithm.eval_inner_lr: Meta-SGD adapts with its learned step "
                             "sizes at evaluation too; leave eval_inner_lr null")
        self.first_order = first_order
        self.inner_lrs = nn.ParameterDict({
            n.replace(".", "__"): nn.Parameter(torch.full_like(p, self.inner_lr))
            for n, p in self.meta_parameters().items() if n in self.adapted_names()
        }) if learn_inner_lr else None

    def adapted_names(self) -> set[str]:
        """The meta-parameters the inner loop adapts (all of them; ANIL: the head)."""
        return set(self.meta_parameters())

    def outer_parameters(self) -> Params:
        params = self.meta_parameters()
        if self.inner_lrs is not None:
            params.update({f"inner_lr.{k}": v for k, v in self.inner_lrs.items()})
        return params

    def step_sizes(self) -> float | Params:
        if self.inner_lrs is None:
            return self.inner_lr
        return {k.replace("__", "."): v for k, v in self.inner_lrs.items()}

    def attention_kernel(self):
        """The fused CPU attention kernels have no double backward; the math one does."""
        return nullcontext() if self.first_order else sdpa_kernel(SDPBackend.MATH)

    def task_forward(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any, yq: torch.Tensor,
                     functional: bool = False) -> TaskForward:
        with self.attention_kernel():
            fast, support_losses, out = self.adapt_and_predict(
                params, xs, ys, xq, self.inner_steps, self.first_order, functional)
            loss = self.objective.loss(out, yq)
        return TaskForward(loss, out, support_losses, fast)

    def meta_gradient(self, forward: TaskForward, params: Params, batched: bool = False) -> Params:
        outer = self.outer_parameters()
        # First order: the gradient at the adapted weights (fast weights are fresh leaves;
        # ANIL's body entries are the meta-parameters themselves; batched, the fast weights are
        # the meta-parameters minus constants, so the gradient w.r.t. those is the same).
        # Second order: through the inner steps.
        wrt = {**outer, **forward.fast} if self.first_order and not batched else outer
        with self.attention_kernel():
            grads = torch.autograd.grad(forward.loss.sum(), list(wrt.values()), allow_unused=True)
        return {n: torch.zeros_like(w) if g is None else g for (n, w), g in zip(wrt.items(), grads, strict=False)}
