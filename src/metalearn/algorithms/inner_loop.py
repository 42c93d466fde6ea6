"""Functional task adaptation: the inner loop every gradient-based algorithm shares.

Fast weights are a dict of tensors run through `torch.func.functional_call`, so the model is
never copied and the meta-weights are never touched by adaptation.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value

Params = dict[str, torch.Tensor]


def outputs_with(module: nn.Module, params: Params, x: Any) -> torch.Tensor:
    """`module(x)` with `params` in place of its own parameters."""
    return functional_call(module, params, (x,))


def adapt(
    module: nn.Module,
    params: Params,
    x: Any,
    y: torch.Tensor,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int,
    lr: float | Params,
    first_order: bool = True,
    functional: bool = False,
) -> tuple[Params, list[torch.Tensor]]:
    """`steps` of SGD on `loss_fn(module(x), y)` from `params`; returns fast weights and losses.

    loss_fn: the objective's loss (metalearn.objectives).

    lr: one step size, or one tensor per parameter (Meta-SGD's learned rates, which the steps
    stay differentiable in). first_order: the fast weights start detached and each step is cut
    from the graph (Reptile, FOMAML). Otherwise the steps stay differentiable w.r.t. `params`
    (MAML).

    functional: gradients by `torch.func.grad`, which also works inside `torch.func.vmap` (a
    meta-batch's tasks adapted at once, `algorithm.vmap_tasks`), where fresh leaves cannot be
    made. First order then stops the gradient of each step instead: the fast weights stay
    `params` minus constants, so the query loss's gradient w.r.t. `params` is FOMAML's
    gradient at the adapted weights.
    """
    if first_order and not functional:
        fast = {n: p.detach().requires_grad_(True) for n, p in params.items()}
    else:
        fast = dict(params)

    def support_loss(weights: Params) -> torch.Tensor:
        return loss_fn(outputs_with(module, weights, x), y)

    losses = []
    for _ in range(steps):
        if functional:
            named, loss = grad_and_value(support_loss)(fast)
            grads = [named[n].detach() if first_order else named[n] for n in fast]
        else:
            loss = support_loss(fast)
            grads = torch.autograd.grad(loss, list(fast.values()), create_graph=not first_order)
        fast = {n: w - (lr[n] if isinstance(lr, dict) else lr) * g
                for (n, w), g in zip(fast.items(), grads, strict=False)}
        if first_order and not functional:
            fast = {n: w.detach().requires_grad_(True) for n, w in fast.items()}
        losses.append(loss.detach())
    return fast, losses


class _Embed(nn.Module):
    """Calls `top.embed`, so `functional_call` can run it with substituted parameters."""

    def __init__(self, top: nn.Module) -> None:
        super().__init__()
        self.top = top

    def forward(self, x: Any) -> torch.Tensor:
        return self.top.embed(x)


def embed_with(top: nn.Module, params: Params, x: Any) -> torch.Tensor:
    """`top.embed(x)` (the representation before the head) with `params` substituted."""
    return functional_call(_Embed(top), {f"top.{n}": p for n, p in params.items()}, (x,))

