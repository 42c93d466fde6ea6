"""The outer loop every hand-written implementation shares: fetch a meta-batch, get its
meta-gradient, write it into `.grad`, take the outer optimizer step (and scheduler step).

Subclasses say how a meta-batch becomes a meta-gradient and its scores (`meta_gradient`).
They use the same outer optimizer and scheduler factories as the metalearn learner, so
equal math gives equal weights, and score the query set before adapting on the steps metalearn
does, those whose training scores Lightning writes (`WrittenSteps`), so equal steps hold equal
work.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True)
class WrittenSteps:
    """The meta-steps (from 0) whose training scores Lightning writes, every `every`-th
    (`trainer.log_every_n_steps`; 0: none): metalearn's gradient learners compute the
    before-adapting scores on those only (`GradientLearner.writes_logs_now`). Lightning's
    rule (`should_update_logs`): step + 1 a multiple of `every`."""

    every: int

    def __post_init__(self) -> None:
        if self.every < 0:
            raise ValueError(f"trainer.log_every_n_steps must be >= 0, got {self.every}")

    def __call__(self, step: int) -> bool:
        return self.every > 0 and (step + 1) % self.every == 0

    @staticmethod
    def of(trainer: Any) -> WrittenSteps:
        """Those of a trainer config (Lightning's default 50 where it sets none)."""
        every = trainer.get("log_every_n_steps")
        return WrittenSteps(50 if every is None else int(every))


# When a hand-written loop scores the query set before adapting: on metalearn's steps (the
# contestants), or on every step / never (the floor's two variants that price that forward).
PRE_SCORES = {"written": "", "every step": ", pre-adaptation scores every step",
              "never": ", no pre-adaptation scores"}


class HandLoop:
    """A plain-PyTorch implementation (bench.timing.Implementation) over `model.top`.

    written: the steps whose scores metalearn's Trainer writes; pre_scores: on which steps
    this loop scores the query set before adapting (`PRE_SCORES`; not "written": a variant
    whose name says so, exempt from the contest's equal-work check).
    """

    name = "hand-written"
    equal_pre_forwards = True

    def __init__(self, model: nn.Module, source: Any, init: dict, inner_lr: float,
                 inner_steps: int, optimizer: Callable, scheduler: Callable | None,
                 device: str = "cpu", *, written: WrittenSteps, pre_scores: str = "written") -> None:
        if pre_scores not in PRE_SCORES:
            raise ValueError(f"pre_scores={pre_scores!r}: one of {sorted(PRE_SCORES)}")
        self.model, self.source, self.init = model.to(device), source, init
        self.device = torch.device(device)
        self.inner_lr, self.inner_steps = inner_lr, inner_steps
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.written, self.pre_scores = written, pre_scores
        if pre_scores != "written":
            self.name += PRE_SCORES[pre_scores]
            self.equal_pre_forwards = False
        self.score_before_adapting = True  # this step's: set by `run`
        self.pre_forwards: list[int] = []  # per step of the last run

    def scores_before_adapting(self, step: int) -> bool:
        """Whether step `step` scores the query set before adapting (`pre_scores`)."""
        return {"written": self.written(step), "every step": True, "never": False}[self.pre_scores]

    def outputs_before_adapting(self, top: nn.Module, params: Params, xs: Any, xq: Any) -> torch.Tensor:
        """The query logits with the meta-weights (the before-adapting scores), as metalearn's
        `outputs_before_adapting`: no gradient, random draws from a forked stream. Counted
        per step (`pre_forwards`); call it where `score_before_adapting` holds."""
        self.pre_forwards[-1] += 1
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            return query_logits(top, params, xs, xq)

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
        self.pre_forwards = []
        for step in range(steps):
            self.pre_forwards.append(0)
            self.score_before_adapting = self.scores_before_adapting(step)
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
        return Trace(all_grads, scores, start, snapshot(params), list(self.pre_forwards)), watch.timed


def mean_over_tasks(per_task: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {k: torch.stack([s[k] for s in per_task]).mean() for k in per_task[0]}
