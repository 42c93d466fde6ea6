"""GradientLearner: adaptation by gradient steps, and the meta-update over a meta-batch.

An algorithm says how one task turns into a meta-gradient (`task_gradient`); this class
averages those over the meta-batch (and over DDP processes), writes the result into `.grad`
and lets the configured outer optimizer take the step (manual optimization). Evaluation adapts
a copy of the meta-weights on the support set and predicts the query set.

A task's math is written once, in `task_forward` (adapt, predict, the query loss) and
`meta_gradient`; the meta-batch runs it task by task, or all tasks at once under
`torch.func.vmap` with `vmap_tasks` (`metalearn.algorithms.task_batch`). The query outputs with
the meta-weights, read only by the before-adapting training scores (`train/query_loss_pre`,
`train/query_<metric>_pre`), are computed only on the steps whose scores Lightning writes.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

from metalearn.algorithms.adapt_check import checked
from metalearn.algorithms.episodic import EpisodicModule
from metalearn.algorithms.evaluation import Adapt, adapted_predictions
from metalearn.algorithms.inner_loop import Params, adapt
from metalearn.algorithms.step_scores import score_steps, step_record
from metalearn.algorithms.task_batch import batched_task_gradient, require_batchable_model
from metalearn.data.episode import Episode


class TaskForward(NamedTuple):
    """What one task's forward computed (each with a leading task dimension when batched):
    the query loss and outputs after adapting, the support losses of the inner steps, and the
    fast weights."""

    loss: torch.Tensor
    out: torch.Tensor
    support_losses: list[torch.Tensor]
    fast: Params


class GradientLearner(EpisodicModule):
    """Meta-learning whose tasks adapt by `inner_steps` SGD steps of size `inner_lr`
    (`eval_inner_steps` of `eval_inner_lr`, by default `inner_lr`, at evaluation); subclasses
    define `task_forward` and `meta_gradient` (or override `task_gradient` alone, which then
    runs task by task only).

    eval_adapt_check: at evaluation, adapt only where adapting lowered the loss on held-out
    support rows (`metalearn.algorithms.adapt_check`), else predict with the meta-weights;
    eval_adapt_check_strict: where the check has nothing to hold out (one example per
    class), keep the meta-weights (true) rather than adapt unchecked (false).

    eval_score_steps: step counts (e.g. [0, 1, 10]) the meta-test also scores the query after,
    along one adaptation, as `<metric>@<steps>` results (`metalearn.algorithms.step_scores`).

    vmap_tasks: adapt all tasks of a meta-batch at once (`torch.func.vmap` over stacked
    support and query tensors) instead of one after the other: same math, for models and
    data that allow it (equal episode sizes, tensor inputs, no running statistics or dropout;
    see `metalearn.algorithms.task_batch`).

    These keys are keyword-only; the model, objective, optimizer and the episodic keys
    (scheduler, transductive, eval_batch_size, seed) pass through to `EpisodicModule`.
    """

    def __init__(self, *args: Any, inner_lr: float = 0.05, inner_steps: int = 5,
                 eval_inner_steps: int = 10, eval_inner_lr: float | None = None,
                 vmap_tasks: bool = False, eval_adapt_check: bool = False,
                 eval_adapt_check_strict: bool = False, eval_score_steps: Sequence[int] | None = None,
                 **kwargs: Any) -> None:
        # Meta-test scores after each of these step counts too (metalearn.algorithms.step_scores).
        eval_score_steps = score_steps(eval_score_steps, adapt_check=eval_adapt_check)
        super().__init__(*args, **kwargs)
        # as checked (a tuple) in the checkpoint's hyperparameters: a meta-test loads them with
        # weights_only, which refuses Hydra's ListConfig
        self.eval_score_steps = self.hparams["eval_score_steps"] = eval_score_steps
        self.automatic_optimization = False
        self.inner_lr, self.inner_steps, self.eval_inner_steps = inner_lr, inner_steps, eval_inner_steps
        # Test-time adaptation may take another step size than meta-training's (Reptile's
        # tasks train with one rate; the held-out task may adapt best with another).
        self.eval_inner_lr = eval_inner_lr
        # Test-time adaptation may decline where it did not help on held-out support rows
        # (metalearn.algorithms.adapt_check).
        self.eval_adapt_check, self.eval_adapt_check_strict = eval_adapt_check, eval_adapt_check_strict
        self._adapt_decisions: list[bool] = []  # the check's decision in the episode evaluated
        self.vmap_tasks = vmap_tasks
        # Whether training tasks also score their query set with the meta-weights (the `_pre`
        # training scores): per training step, see `scoring_before_adapting`.
        self.score_before_adapting = True
        if vmap_tasks:
            own = type(self)
            if (own.task_forward is GradientLearner.task_forward
                    or own.meta_gradient is GradientLearner.meta_gradient):
                raise ValueError(
                    f"algorithm.vmap_tasks=true runs task_forward and meta_gradient over the "
                    f"whole meta-batch; {own.__name__} does not define both (set "
                    "algorithm.vmap_tasks=false)")
            require_batchable_model(self.model.top)

    # ---- adaptation ---------------------------------------------------------------------------
    def step_sizes(self) -> float | Params:
        """The inner learning rate (one number; Meta-SGD returns one tensor per parameter)."""
        return self.inner_lr

    def adapt_support(self, params: Params, xs: Any, ys: torch.Tensor, steps: int,
                      first_order: bool = True, functional: bool = False
                      ) -> tuple[Params, list[torch.Tensor]]:
        """Fast weights after `steps` inner steps on the support set, and the support losses.

        The fast weights cover every meta-parameter (ANIL leaves the body's as they are).
        functional: as `inner_loop.adapt` (inside `torch.func.vmap`).
        """
        return adapt(self.model.top, params, xs, ys, self.objective.loss, steps,
                     self.step_sizes(), first_order, functional)

    def adapt_and_predict(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any, steps: int,
                          first_order: bool = True, functional: bool = False
                          ) -> tuple[Params, list[torch.Tensor], torch.Tensor]:
        """Adapt on the support set for `steps`; return fast weights, support losses, query outputs."""
        fast, losses = self.adapt_support(params, xs, ys, steps, first_order, functional)
        return fast, losses, self.predict(fast, xs, xq)

    def eval_adapt(self) -> Adapt:
        """Test-time adaptation: `eval_inner_lr` steps where set, checked where configured."""
        adapt = self.adapt_support if self.eval_inner_lr is None else self.adapt_at_eval_rate
        if self.eval_adapt_check:
            adapt = checked(self, adapt, self._adapt_decisions, self.eval_adapt_check_strict)
        return adapt

    def query_predictions(self, ep: Episode) -> tuple[torch.Tensor, torch.Tensor]:
        return adapted_predictions(self, ep, self.eval_adapt(), self.eval_inner_steps)

    def test_episode(self, ep: Episode) -> dict[str, Any]:
        """The record; with eval_score_steps, the scores after each count too (one adaptation)."""
        if self.eval_score_steps is None:
            return super().test_episode(ep)
        return step_record(self, ep, self.eval_adapt(), self.eval_inner_steps, self.eval_score_steps)

    def evaluate_episode(self, ep: Episode) -> dict[str, Any]:
        """The episode's record; with eval_adapt_check, also whether it adapted (`adapted`)."""
        self._adapt_decisions.clear()
        record = super().evaluate_episode(ep)
        if self._adapt_decisions:
            record["adapted"] = float(self._adapt_decisions[-1])
        return record

    def adapt_at_eval_rate(self, params: Params, xs: Any, ys: torch.Tensor,
                           steps: int) -> tuple[Params, list[torch.Tensor]]:
        """adapt_support with `eval_inner_lr` as the step size (first order: nothing
        differentiates through evaluation)."""
        return adapt(self.model.top, params, xs, ys, self.objective.loss, steps,
                     self.eval_inner_lr, True)

    # ---- the meta-update ------------------------------------------------------------------------
    def task_forward(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any, yq: torch.Tensor,
                     functional: bool = False) -> TaskForward:
        """One task, from the meta-parameters to its query loss (trunk features given).

        functional: inside `torch.func.vmap` (tasks batched): gradients by `torch.func.grad`.
        """
        raise NotImplementedError

    def meta_gradient(self, forward: TaskForward, params: Params, batched: bool = False) -> Params:
        """The task's contribution to the meta-gradient (batched: summed over the tasks)."""
        raise NotImplementedError

    def task_gradient(self, ep: Episode, params: Params) -> tuple[Params, dict[str, float]]:
        """This task's contribution to the meta-gradient, and its scores for logging."""
        xs, xq = self.model.features(ep.support_x), self.model.features(ep.query_x)
        forward = self.task_forward(params, xs, ep.support_y, xq, ep.query_y)
        grads = self.meta_gradient(forward, params)
        out_pre = self.outputs_before_adapting(params, xs, xq) if self.score_before_adapting else None
        return grads, self.task_scores(ep, out_pre, forward.out.detach(), forward.support_losses)

    @contextmanager
    def scoring_before_adapting(self, on: bool) -> Iterator[None]:
        """Within: training tasks score their query set before adapting only if `on`
        (`training_step`: on the steps whose scores Lightning writes); outside, always."""
        self.score_before_adapting = on
        try:
            yield
        finally:
            self.score_before_adapting = True

    def outputs_before_adapting(self, params: Params, xs: Any, xq: Any) -> torch.Tensor:
        """Query outputs with the meta-weights, for the before-adapting training scores.

        No gradient; random draws (dropout) come from a fork of the CPU's and this module's
        GPU's streams, which then go on as if they had not been drawn, so computing these or
        not (`score_before_adapting`) leaves every training mask as it is."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.no_grad(), torch.random.fork_rng(devices=devices):
            return self.predict(params, xs, xq)

    def task_scores(self, ep: Episode, out_pre: torch.Tensor | None, out: torch.Tensor,
                    support_losses: list[torch.Tensor]) -> dict[str, float]:
        """What a training task logs: query loss and score after adapting, and before (from
        `out_pre`, the meta-weights' outputs, where given)."""
        return {k: v.item() for k, v in
                self.score_tensors(ep.query_y, out_pre, out, support_losses).items()}

    def score_tensors(self, y: torch.Tensor, out_pre: torch.Tensor | None, out: torch.Tensor,
                      support_losses: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """`task_scores` as 0-d tensors (what a batched meta-batch computes under vmap)."""
        objective, metric = self.objective, self.objective.metric
        scores = {"query_loss": objective.loss(out, y), f"query_{metric}": objective.score(out, y)}
        if out_pre is not None:
            scores.update({"query_loss_pre": objective.loss(out_pre, y),
                           f"query_{metric}_pre": objective.score(out_pre, y)})
        scores["support_loss"] = support_losses[0] if support_losses else torch.tensor(float("nan"))
        return scores

    def training_step(self, episodes: list[Episode], batch_idx: int) -> None:
        opt = self.optimizers()
        params, outer = self.meta_parameters(), self.outer_parameters()
        total = len(episodes) * self.trainer.world_size
        meta_grad = {n: torch.zeros_like(p) for n, p in outer.items()}
        scores: dict[str, list[float]] = defaultdict(list)
        # The before-adapting scores are read only where Lightning writes the window, whose
        # `_pre` means then hold the steps that computed them (see algorithms.train_scores).
        with self.step_rng(), self.scoring_before_adapting(self.writes_logs_now()):
            if self.vmap_tasks:
                summed, per_task = batched_task_gradient(self, episodes, params)
                for n, g in summed.items():
                    meta_grad[n] += g.detach() / total
            else:
                per_task = []
                for ep in episodes:
                    grads, s = self.task_gradient(ep, params)
                    for n, g in grads.items():
                        meta_grad[n] += g.detach() / total
                    per_task.append(s)
                    del grads  # not held beside the next task's: one copy of the meta-parameters
            for s in per_task:
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
        self.log_train({k: sum(v) / len(v) for k, v in scores.items()}, len(episodes),
                       prog_bar=f"query_{self.objective.metric}")
