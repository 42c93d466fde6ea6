"""MAML (Finn et al. 2017): the meta-gradient of the query loss after adaptation.

Second order differentiates through the inner steps (`torch.func.functional_call` on any
module, a Hugging Face encoder included); `first_order: true` is FOMAML, whose meta-gradient is
the query-loss gradient at the adapted weights. `learn_inner_lr: true` is Meta-SGD (Li et al.
2017): one learned inner step size per parameter entry, meta-learned with the weights.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from metalearn.algorithms.gradient import GradientLearner
from metalearn.algorithms.inner_loop import Params
from metalearn.data.episode import Episode


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

    def task_gradient(self, ep: Episode, params: Params) -> tuple[Params, dict[str, float]]:
        xs, xq = self.model.features(ep.support_x), self.model.features(ep.query_x)
        with torch.no_grad():
            out_pre = self.predict(params, xs, xq)
        # The fused CPU attention kernels have no double backward; the math one does.
        kernel = nullcontext() if self.first_order else sdpa_kernel(SDPBackend.MATH)
        with kernel:
            fast, support_losses, out = self.adapt_and_predict(
                params, xs, ep.support_y, xq, self.inner_steps, first_order=self.first_order)
            loss = self.objective.loss(out, ep.query_y)
            outer = self.outer_parameters()
            # First order: the gradient at the adapted weights (fast weights are fresh leaves;
            # ANIL's body entries are the meta-parameters themselves). Second order: through
            # the inner steps.
            wrt = {**outer, **fast} if self.first_order else outer
            grads = torch.autograd.grad(loss, list(wrt.values()), allow_unused=True)
        grads = {n: torch.zeros_like(w) if g is None else g for (n, w), g in zip(wrt.items(), grads)}
        return grads, self.task_scores(ep, out_pre, out.detach(), support_losses)
