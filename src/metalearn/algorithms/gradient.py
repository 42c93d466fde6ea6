"""GradientLearner: adaptation by gradient steps, and the meta-update over a meta-batch.

An algorithm says how one task turns into a meta-gradient (`task_gradient`); this class
averages those over the meta-batch (and over DDP processes), writes the result into `.grad`
and lets the configured outer optimizer take the step (manual optimization). Evaluation adapts
a copy of the meta-weights on the support set and predicts the query set.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any, Callable

import torch
import torch.distributed as dist

from metalearn.algorithms.episodic import EpisodicModule
from metalearn.algorithms.inner_loop import Params, adapt
from metalearn.data.episode import Episode
from metalearn.models.split import SplitModel
from metalearn.objectives import Objective


class GradientLearner(EpisodicModule):
    """Meta-learning whose tasks adapt by `inner_steps` SGD steps of size `inner_lr`
    (`eval_inner_steps` of `eval_inner_lr`, by default `inner_lr`, at evaluation); subclasses
    define `task_gradient`."""

    def __init__(
        self,
        model: SplitModel,
        objective: Objective,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        inner_lr: float = 0.05,
        inner_steps: int = 5,
        eval_inner_steps: int = 10,
        transductive: bool = False,
        eval_batch_size: int = 64,
        seed: int = 0,
        eval_inner_lr: float | None = None,
    ) -> None:
        super().__init__(model, objective, optimizer, scheduler, transductive, eval_batch_size,
                         seed)
        self.automatic_optimization = False
        self.inner_lr, self.inner_steps, self.eval_inner_steps = inner_lr, inner_steps, eval_inner_steps
        # Test-time adaptation may take another step size than meta-training's (Reptile's
        # tasks train with one rate; the held-out task may adapt best with another).
        self.eval_inner_lr = eval_inner_lr

    # ---- adaptation ---------------------------------------------------------------------------
    def step_sizes(self) -> float | Params:
        """The inner learning rate (one number; Meta-SGD returns one tensor per parameter)."""
        return self.inner_lr

    def adapt_support(self, params: Params, xs: Any, ys: torch.Tensor, steps: int,
                      first_order: bool = True) -> tuple[Params, list[torch.Tensor]]:
        """Fast weights after `steps` inner steps on the support set, and the support losses.

        The fast weights cover every meta-parameter (ANIL leaves the body's as they are).
        """
        return adapt(self.model.top, params, xs, ys, self.objective.loss, steps,
                     self.step_sizes(), first_order)

    def adapt_and_predict(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any, steps: int,
                          first_order: bool = True) -> tuple[Params, list[torch.Tensor], torch.Tensor]:
        """Adapt on the support set for `steps`; return fast weights, support losses, query outputs."""
        fast, losses = self.adapt_support(params, xs, ys, steps, first_order)
        return fast, losses, self.predict(fast, xs, xq)

    def query_predictions(self, ep: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        if self.eval_inner_lr is None:
            return self.adapted_predictions(ep, self.adapt_support, self.eval_inner_steps)
        return self.adapted_predictions(ep, self.adapt_at_eval_rate, self.eval_inner_steps)

    def adapt_at_eval_rate(self, params: Params, xs: Any, ys: torch.Tensor,
                           steps: int) -> tuple[Params, list[torch.Tensor]]:
        """adapt_support with `eval_inner_lr` as the step size (first order: nothing
        differentiates through evaluation)."""
        return adapt(self.model.top, params, xs, ys, self.objective.loss, steps,
                     self.eval_inner_lr, True)

    # ---- the meta-update ------------------------------------------------------------------------
    def task_gradient(self, ep: Episode, params: Params) -> tuple[Params, dict[str, float]]:
        """This task's contribution to the meta-gradient, and its scores for logging."""
        raise NotImplementedError

    def task_scores(self, ep: Episode, out_pre: torch.Tensor, out: torch.Tensor,
                    support_losses: list[torch.Tensor]) -> dict[str, float]:
        """What a training task logs: query loss and score before and after adapting."""
        y, objective, metric = ep.query_y, self.objective, self.objective.metric
        return {"query_loss": objective.loss(out, y).item(),
                f"query_{metric}": objective.score(out, y).item(),
                "query_loss_pre": objective.loss(out_pre, y).item(),
                f"query_{metric}_pre": objective.score(out_pre, y).item(),
                "support_loss": support_losses[0].item() if support_losses else float("nan")}

    def training_step(self, episodes: list[Episode], batch_idx: int) -> None:
        opt = self.optimizers()
        params, outer = self.meta_parameters(), self.outer_parameters()
        total = len(episodes) * self.trainer.world_size
        meta_grad = {n: torch.zeros_like(p) for n, p in outer.items()}
        scores: dict[str, list[float]] = defaultdict(list)
        with self.step_rng():
            for ep in episodes:
                grads, s = self.task_gradient(ep, params)
                for n, g in grads.items():
                    meta_grad[n] += g.detach() / total
                for k, v in s.items():
                    scores[k].append(v)
        if dist.is_available() and dist.is_initialized() and self.trainer.world_size > 1:
            for g in meta_grad.values():  # manual .grad skips DDP's hooks: average here
                dist.all_reduce(g, op=dist.ReduceOp.SUM)
        opt.zero_grad()
        for n, p in outer.items():
            p.grad = meta_grad[n]
        opt.step()
        sch = self.lr_schedulers()
        if sch is not None:
            sch.step()
        for k, v in scores.items():
            self.log(f"train/{k}", sum(v) / len(v), prog_bar=k == f"query_{self.objective.metric}",
                     batch_size=len(v), sync_dist=True)
