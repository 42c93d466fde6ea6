"""The MetaLearner: a LightningModule running a meta-batch of tasks per training step.

An algorithm only says how one task turns into a meta-gradient (`task_gradient`); this base
averages those over the meta-batch (and over DDP processes), writes the result into `.grad`
and lets the configured outer optimizer take the step. Evaluation adapts on the support set
and scores the query set, never changing the meta-weights.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import pytorch_lightning as pl
import torch
import torch.distributed as dist

from metalearn.algorithms.inner_loop import Params, adapt, embed_with, head_prefix, outputs_with
from metalearn.algorithms.stats import mean_ci95
from metalearn.data.episodes import row_chunks
from metalearn.episode import Episode
from metalearn.models.norm import has_episode_norm, support_statistics
from metalearn.models.split import SplitModel
from metalearn.objectives import Objective, require_served

log = logging.getLogger(__name__)


def gather_lists(values: list) -> list:
    """All processes' lists joined (the list itself on one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, values)
    return [v for part in out for v in part]


class MetaLearner(pl.LightningModule):
    """Shared machinery of episodic learning; gradient-based algorithms define `task_gradient`.

    transductive: score the query set as one batch, so batch-statistics layers see all query
    examples at once. Off (the default), each query prediction depends only on the support
    set and itself (see metalearn.models.norm). The objective gives the loss, the score and
    the metric's name; `objectives` lists the ones an algorithm can serve.
    """

    objectives: tuple[str, ...] = ("classification", "regression")

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
    ) -> None:
        super().__init__()
        require_served(objective, type(self), "algorithm")
        self.automatic_optimization = False
        self.save_hyperparameters(ignore=["model", "objective", "optimizer", "scheduler"])
        self.model, self.objective = model, objective
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.inner_lr, self.inner_steps, self.eval_inner_steps = inner_lr, inner_steps, eval_inner_steps
        self.transductive, self.eval_batch_size = transductive, eval_batch_size
        self.seed = seed
        self.test_results: list[dict] = []
        self._scores: list[dict] = []

    # ---- pieces the algorithms use -----------------------------------------------------------
    def meta_parameters(self) -> Params:
        """The adapted (top) parameters: what the meta-update moves."""
        return {n: p for n, p in self.model.top.named_parameters() if p.requires_grad}

    def outer_parameters(self) -> Params:
        """Everything the outer optimizer steps: the meta-parameters, plus any learned extras."""
        return self.meta_parameters()

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

    def predict(self, params: Params, xs: Any, xq: Any) -> torch.Tensor:
        """Query outputs (logits, values) with `params`, with batch statistics from the support only unless
        transductive (the support rows ride along and are dropped)."""
        top = self.model.top
        if not self.needs_support_rows():
            return outputs_with(top, params, xq)
        n = len(xs)
        with support_statistics(top, n):
            return outputs_with(top, params, torch.cat([xs, xq]))[n:]

    def adapt_and_predict(self, params: Params, xs: Any, ys: torch.Tensor, xq: Any, steps: int,
                          first_order: bool = True) -> tuple[Params, list[torch.Tensor], torch.Tensor]:
        """Adapt on the support set for `steps`; return fast weights, support losses, query outputs."""
        fast, losses = self.adapt_support(params, xs, ys, steps, first_order)
        return fast, losses, self.predict(fast, xs, xq)

    def embeddings(self, params: Params, xs: Any, xq: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """`top.embed` of support and query with `params` (support-only statistics unless
        transductive); the body runs once per episode, whatever the inner loop then does."""
        top = self.model.top
        if not self.needs_support_rows():
            return embed_with(top, params, xs), embed_with(top, params, xq)
        n = len(xs)
        with support_statistics(top, n):
            z = embed_with(top, params, torch.cat([xs, xq]))
        return z[:n], z[n:]

    def query_embedding(self, params: Params, xs: Any, xq: Any) -> torch.Tensor:
        """`top.embed` of the query alone, with support-only statistics unless transductive."""
        return self.embeddings(params, xs, xq)[1] if self.needs_support_rows() else embed_with(
            self.model.top, params, xq)

    def keep_own_head(self, checkpoint: dict[str, Any]) -> None:
        """Put this model's own head into a checkpoint about to be loaded: for algorithms whose
        trained weights do not include the N-way head, so a net trained 5-way tests 20-way."""
        top = self.model.top
        if not hasattr(top, "head"):
            return
        prefix = f"model.top.{head_prefix(top)}"
        own = top.head.state_dict()
        state = checkpoint["state_dict"]
        for name in [n for n in state if n.startswith(prefix)]:
            state.pop(name)
        state.update({prefix + n: t for n, t in own.items()})

    def needs_support_rows(self) -> bool:
        """Whether query predictions need the support rows beside them (batch statistics)."""
        return not self.transductive and has_episode_norm(self.model.top)

    def task_scores(self, ep: Episode, out_pre: torch.Tensor, out: torch.Tensor,
                    support_losses: list[torch.Tensor]) -> dict[str, float]:
        """What a training task logs: query loss and score before and after adapting."""
        y, objective, metric = ep.query_y, self.objective, self.objective.metric
        return {"query_loss": objective.loss(out, y).item(),
                f"query_{metric}": objective.score(out, y).item(),
                "query_loss_pre": objective.loss(out_pre, y).item(),
                f"query_{metric}_pre": objective.score(out_pre, y).item(),
                "support_loss": support_losses[0].item() if support_losses else float("nan")}

    def task_gradient(self, ep: Episode, params: Params) -> tuple[Params, dict[str, float]]:
        """This task's contribution to the meta-gradient, and its scores for logging."""
        raise NotImplementedError

    @contextmanager
    def step_rng(self) -> Iterator[None]:
        """Dropout masks from a per-step seed, so a resumed run draws the same ones."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + self.global_step)
            yield

    # ---- training -----------------------------------------------------------------------------
    def configure_optimizers(self):
        opt = self.optimizer_factory(list(self.outer_parameters().values()))
        if self.scheduler_factory is None:
            return opt
        return {"optimizer": opt,
                "lr_scheduler": {"scheduler": self.scheduler_factory(opt), "interval": "step"}}

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Lightning 2.6 adds 1 to its logging step when it restarts from a checkpoint, assuming
        # the save came mid-batch; ours come at validation end, so resumed curves would be
        # shifted one step. One optimizer step per batch: the logging step is global_step.
        loop = self.trainer.fit_loop.epoch_loop
        if hasattr(loop, "_batches_that_stepped"):
            loop._batches_that_stepped = self.global_step

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

    # ---- evaluation ---------------------------------------------------------------------------
    def evaluate_episode(self, ep: Episode) -> dict[str, Any]:
        """Adapt a copy of the meta-weights on the support set and score the query set."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "evaluation adapts on the support set and needs gradients, but Lightning runs it "
                "under torch.inference_mode: build the Trainer with inference_mode=False")
        params = self.meta_parameters()
        xs = self.model.features(ep.support_x)
        with torch.enable_grad():
            fast, _ = self.adapt_support(params, xs, ep.support_y, self.eval_inner_steps)
        post, pre = torch.empty_like(ep.query_y), torch.empty_like(ep.query_y)
        predictions = self.objective.predictions
        with torch.no_grad():
            for rows, chunk in self.query_chunks(ep):
                xq = self.model.features(chunk)
                post[rows] = predictions(self.predict(fast, xs, xq))
                pre[rows] = predictions(self.predict(params, xs, xq))
        return self.score(ep, post, pre)

    def query_chunks(self, ep: Episode) -> list[tuple[torch.Tensor, Any]]:
        """The query set in length-sorted chunks of `eval_batch_size` for evaluation.

        An ARSC query file (~800 reviews) in one forward pads every review to the longest and
        holds all activations at once (measured: 85 s and 2.3 GB per episode, against 45 s and
        0.9 GB in chunks of 64). Chunks change nothing unless transductive, where the query
        must stay one batch.
        """
        size = len(ep.query_y) if self.transductive else self.eval_batch_size
        return row_chunks(ep.query_x, size)

    def score(self, ep: Episode, pred: torch.Tensor, pred_pre: torch.Tensor | None) -> dict[str, Any]:
        """One evaluation episode's record from its query predictions (pred_pre: before
        adapting, where that means anything)."""
        rows = self.objective.example_scores(pred, ep.query_y)  # [Q]
        pre = None if pred_pre is None else self.objective.example_scores(pred_pre, ep.query_y)
        return {"domain": ep.domain, "family": ep.family, "value": rows.mean().item(),
                "value_pre": None if pre is None else pre.mean().item(),
                "ci95_examples": self.objective.episode_ci95(rows),
                "shots": ep.shots, "queries": ep.queries}

    def on_validation_epoch_start(self) -> None:
        self._scores = []

    def validation_step(self, ep: Episode, batch_idx: int) -> None:
        self._scores.append(self.evaluate_episode(ep))

    def on_validation_epoch_end(self) -> None:
        scores = gather_lists(self._scores)
        if not scores:
            return
        m = self.objective.metric
        value, ci = mean_ci95([s["value"] for s in scores])
        metrics = {f"val/{m}": value, f"val/{m}_ci95": ci}
        if scores[0]["value_pre"] is not None:
            metrics[f"val/{m}_pre"] = mean_ci95([s["value_pre"] for s in scores])[0]
        self.log_dict(metrics, rank_zero_only=True)

    def on_test_epoch_start(self) -> None:
        self._scores = []

    def test_step(self, ep: Episode, batch_idx: int) -> None:
        self._scores.append(self.evaluate_episode(ep))

    def on_test_epoch_end(self) -> None:
        scores = gather_lists(self._scores)
        by_domain: dict[str, list[dict]] = defaultdict(list)
        for s in scores:
            by_domain[s["domain"]].append(s)
        m = self.objective.metric
        self.test_results, metrics = [], {}
        for domain in sorted(by_domain):
            rows = by_domain[domain]
            value, ci = mean_ci95([r["value"] for r in rows])
            if len(rows) == 1:  # one fixed episode (ARSC): the interval over its query examples
                ci = rows[0]["ci95_examples"]
            pre = (None if rows[0]["value_pre"] is None
                   else mean_ci95([r["value_pre"] for r in rows])[0])
            self.test_results.append({"group": domain, "metric": m, "value": value, "ci95": ci,
                                      "value_pre": pre, "episodes": len(rows),
                                      "shots": rows[0]["shots"], "queries": rows[0]["queries"]})
            metrics.update({f"test/{domain}/{m}": value, f"test/{domain}/{m}_ci95": ci})
            if pre is not None:
                metrics[f"test/{domain}/{m}_pre"] = pre
        if scores:
            value, ci = mean_ci95([s["value"] for s in scores])
            metrics.update({f"test/{m}": value, f"test/{m}_ci95": ci})
        self.log_dict(metrics, rank_zero_only=True)
        for r in self.test_results:
            pre = "" if r["value_pre"] is None else f" (before adapting {r['value_pre']:.4f})"
            log.info("meta-test %-22s %s %.4f ± %.4f%s, %d episodes",
                     r["group"], m, r["value"], r["ci95"], pre, r["episodes"])
