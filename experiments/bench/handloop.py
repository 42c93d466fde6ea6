"""The outer loop every hand-written implementation shares: fetch a meta-batch, get its
meta-gradient, write it into `.grad`, take the outer optimizer step (and scheduler step).

Subclasses say how a meta-batch becomes a meta-gradient and its scores (`meta_gradient`).
They use the same outer optimizer and scheduler factories as the metalearn learner, so
equal math gives equal weights.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from bench.device import to
from bench.same_math import Params, Trace, snapshot
from bench.timing import Stopwatch, Timed
from metalearn.data.episode import Episode
from metalearn.models.norm import has_episode_norm, support_statistics


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(-1) == y).float().mean()


def query_logits(top: nn.Module, params: Params, xs: Any, xq: Any) -> torch.Tensor:
    """`top(xq)` with `params`; batch-statistics layers (Conv4) take them from the support
    rows only, riding along in front, as metalearn's non-transductive `predict` does."""
    if not has_episode_norm(top):
        return functional_call(top, params, (xq,))
    n = len(xs)
    with support_statistics(top, n):
        return functional_call(top, params, (torch.cat([xs, xq]),))[n:]


def task_scores(logits: torch.Tensor, logits_pre: torch.Tensor | None, y: torch.Tensor,
                support_loss: torch.Tensor) -> dict[str, torch.Tensor]:
    """What metalearn logs per task (as tensors: nothing is synchronised to Python here)."""
    out = {"query_loss": F.cross_entropy(logits, y), "query_acc": accuracy(logits, y),
           "support_loss": support_loss}
    if logits_pre is not None:
        out.update(query_loss_pre=F.cross_entropy(logits_pre, y),
                   query_acc_pre=accuracy(logits_pre, y))
    return out


class HandLoop:
    """A plain-PyTorch implementation (bench.timing.Implementation) over `model.top`."""

    name = "hand-written"

    def __init__(self, model: nn.Module, source: Any, init: dict, inner_lr: float,
                 inner_steps: int, optimizer: Callable, scheduler: Callable | None,
                 device: str = "cpu") -> None:
        self.model, self.source, self.init = model.to(device), source, init
        self.device = torch.device(device)
        self.inner_lr, self.inner_steps = inner_lr, inner_steps
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler

    def meta_parameters(self) -> Params:
        return {n: p for n, p in self.model.top.named_parameters() if p.requires_grad}

    def fetch(self, step: int) -> list[Any]:
        """Step `step`'s meta-batch, in the form this implementation starts from, on its device
        (inside the timed steps, as Lightning moves metalearn's batch inside its loop)."""
        return to(self.source.meta_batch_at(step), self.device)

    def meta_gradient(self, episodes: list[Episode], params: Params
                      ) -> tuple[Params, dict[str, torch.Tensor]]:
        """The meta-batch's mean meta-gradient and mean scores."""
        raise NotImplementedError

    def run(self, steps: int, timed_from: int) -> tuple[Trace, Timed]:
        self.model.load_state_dict(self.init)
        self.model.train()
        params = self.meta_parameters()
        start = snapshot(params)
        opt = self.optimizer_factory(list(params.values()))
        sched = self.scheduler_factory(opt) if self.scheduler_factory is not None else None
        watch = Stopwatch(steps - timed_from)
        all_grads, all_scores = [], []
        for step in range(steps):
            episodes = self.fetch(step)
            if step == timed_from:
                watch.start()
            grads, scores = self.meta_gradient(episodes, params)
            opt.zero_grad()
            for n, p in params.items():
                p.grad = grads[n]
            all_grads.append(snapshot(grads))
            all_scores.append(scores)
            opt.step()
            if sched is not None:
                sched.step()
        watch.stop()
        scores = [{k: float(v) for k, v in s.items()} for s in all_scores]
        return Trace(all_grads, scores, start, snapshot(params)), watch.timed


def mean_over_tasks(per_task: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in per_task]).mean() for k in per_task[0]}
