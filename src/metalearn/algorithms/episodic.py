"""EpisodicModule: the Lightning plumbing every algorithm shares, and episodic evaluation.

An algorithm says how it trains (`training_step`) and how it predicts a query set from an
episode (`query_predictions`); this module runs the model on episodes (batch statistics from
the support set only, unless transductive), scores query predictions with the objective,
aggregates the scores per group with 95% intervals, and logs them as `val/<metric>` and
`test/<group>/<metric>`. Gradient-based adaptation lives in `algorithms.gradient`.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist

from metalearn.algorithms.finite import check_finite
from metalearn.algorithms.inner_loop import Params, embed_with, outputs_with
from metalearn.algorithms.stats import mean_ci95
from metalearn.algorithms.train_scores import Score, ScoreWindow
from metalearn.data.batches import row_chunks
from metalearn.data.episode import Episode
from metalearn.models.norm import has_episode_norm, support_statistics
from metalearn.models.split import SplitModel
from metalearn.models.top import Top
from metalearn.objectives import Objective, require_served

log = logging.getLogger(__name__)

# Adapts meta-parameters on a support set: (params, support inputs, targets, steps) ->
# (fast weights, support losses).
Adapt = Callable[[Params, Any, torch.Tensor, int], tuple[Params, list[torch.Tensor]]]


def gather_lists(values: list) -> list:
    """All processes' lists joined (the list itself on one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return values
    out: list = [None] * dist.get_world_size()
    dist.all_gather_object(out, values)
    return [v for part in out for v in part]


class EpisodicModule(pl.LightningModule):
    """A model trained and evaluated on episodes, scored by an objective.

    transductive: score the query set as one batch, so batch-statistics layers see all query
    examples at once. Off (the default), each query prediction depends only on the support
    set and itself (see metalearn.models.norm). `objectives` lists the objectives an
    algorithm can serve (checked here and, before anything is built, by train()).
    """

    objectives: tuple[str, ...] = ("classification", "regression")

    def __init__(
        self,
        model: SplitModel,
        objective: Objective,
        optimizer: Callable[..., torch.optim.Optimizer],
        scheduler: Callable[..., Any] | None = None,
        transductive: bool = False,
        eval_batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__()
        require_served(objective, type(self), "algorithm")
        self.save_hyperparameters(ignore=["model", "objective", "optimizer", "scheduler"])
        self.model, self.objective = model, objective
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        self.transductive, self.eval_batch_size = transductive, eval_batch_size
        self.seed = seed
        self.test_results: list[dict] = []
        self._scores: list[dict] = []
        self.train_window = ScoreWindow()

    # ---- the model on an episode --------------------------------------------------------------
    def meta_parameters(self) -> Params:
        """The trainable parameters of the model's top: what training moves and tests adapt."""
        return {n: p for n, p in self.model.top.named_parameters() if p.requires_grad}

    def outer_parameters(self) -> Params:
        """Everything the optimizer steps: the meta-parameters, plus any learned extras."""
        return self.meta_parameters()

    def needs_support_rows(self) -> bool:
        """Whether query predictions need the support rows beside them (batch statistics)."""
        return not self.transductive and has_episode_norm(self.model.top)

    def predict(self, params: Params, xs: Any, xq: Any) -> torch.Tensor:
        """Query outputs (logits, values) with `params`, with batch statistics from the support
        only unless transductive (the support rows ride along and are dropped)."""
        top = self.model.top
        if not self.needs_support_rows():
            return outputs_with(top, params, xq)
        n = len(xs)
        with support_statistics(top, n):
            return outputs_with(top, params, torch.cat([xs, xq]))[n:]

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
        if not isinstance(top, Top):
            return
        prefix = f"model.top.{top.head_prefix()}"
        state = checkpoint["state_dict"]
        for name in [n for n in state if n.startswith(prefix)]:
            state.pop(name)
        state.update({prefix + n: t for n, t in top.head.state_dict().items()})

    # ---- training plumbing --------------------------------------------------------------------
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

    @contextmanager
    def step_rng(self) -> Iterator[None]:
        """Dropout masks from a per-step seed, so a resumed run draws the same ones.

        Seeds the CPU generator and this module's GPU only: `torch.manual_seed` visits every
        backend PyTorch knows, 90 us a step on a CPU (a few percent of a small model's step)."""
        seed = self.seed * 1_000_003 + self.global_step
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(seed)
            if self.device.type == "cuda":
                torch.cuda.manual_seed(seed)
            elif self.device.type != "cpu":
                torch.manual_seed(seed)
            yield

    def log_train(self, scores: Mapping[str, Score], count: int, prog_bar: str | None = None) -> None:
        """This meta-step's training scores (each a mean over its `count` tasks or examples),
        logged as `train/<name>` on the steps Lightning writes (`trainer.log_every_n_steps`):
        each the mean over the steps since the last write (see algorithms.train_scores)."""
        for name, value in scores.items():
            self.train_window.add(name, value, count)
        if not self.writes_logs_now():
            return
        means = self.train_window.take()
        check_finite({name: mean for name, (mean, _) in means.items()}, step=self.global_step)
        for name, (mean, n) in means.items():
            self.log(f"train/{name}", mean, prog_bar=name == prog_bar, batch_size=n, sync_dist=True)

    def writes_logs_now(self) -> bool:
        """Whether Lightning writes this training step's logged values (its own test)."""
        trainer = self.trainer
        connector = getattr(trainer, "_logger_connector", None)
        return connector is None or connector.should_update_logs or bool(trainer.fast_dev_run)

    def on_train_end(self) -> None:
        # Lightning writes nothing logged after the last write: neither do we, nor do we carry
        # those steps into a later fit of this module. Their loss must still have been finite.
        unwritten, self.train_window = self.train_window.take(), ScoreWindow()
        check_finite({name: mean for name, (mean, _) in unwritten.items()}, step=self.global_step)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["metalearn_train_scores"] = self.train_window.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.train_window.load_state_dict(checkpoint.get("metalearn_train_scores", {}))

    # ---- evaluation ---------------------------------------------------------------------------
    def query_predictions(self, ep: Episode) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The episode's query predictions (shaped like `query_y`), and those before adapting
        to the support set (None where nothing adapts)."""
        raise NotImplementedError

    def adapted_predictions(self, ep: Episode, adapt: Adapt,
                            steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Query predictions after `adapt`ing a copy of the meta-weights on the support set for
        `steps`, and with the meta-weights themselves (the meta-weights never change)."""
        if torch.is_inference_mode_enabled():
            raise RuntimeError(
                "evaluation adapts on the support set and needs gradients, but Lightning runs it "
                "under torch.inference_mode: build the Trainer with inference_mode=False")
        params = self.meta_parameters()
        xs = self.model.features(ep.support_x)
        with torch.enable_grad():
            fast, _ = adapt(params, xs, ep.support_y, steps)
        post, pre = torch.empty_like(ep.query_y), torch.empty_like(ep.query_y)
        predictions = self.objective.predictions
        with torch.no_grad():  # .to: under autocast (bf16-mixed) regression outputs are bfloat16
            for rows, chunk in self.query_chunks(ep):
                xq = self.model.features(chunk)
                post[rows] = predictions(self.predict(fast, xs, xq)).to(post.dtype)
                pre[rows] = predictions(self.predict(params, xs, xq)).to(pre.dtype)
        return post, pre

    def query_chunks(self, ep: Episode) -> list[tuple[torch.Tensor, Any]]:
        """The query set in length-sorted chunks of `eval_batch_size` for evaluation.

        An ARSC query file (~800 reviews) in one forward pads every review to the longest and
        holds all activations at once (measured: 85 s and 2.3 GB per episode, against 45 s and
        0.9 GB in chunks of 64). Chunks change nothing unless transductive, where the query
        must stay one batch.
        """
        size = len(ep.query_y) if self.transductive else self.eval_batch_size
        return row_chunks(ep.query_x, size)

    def evaluate_episode(self, ep: Episode) -> dict[str, Any]:
        """One evaluation episode's record: its score, before adapting too where that exists."""
        return self.score(ep, *self.query_predictions(ep))

    def score(self, ep: Episode, pred: torch.Tensor, pred_pre: torch.Tensor | None) -> dict[str, Any]:
        """An episode's record from its query predictions (pred_pre: before adapting)."""
        rows = self.objective.example_scores(pred, ep.query_y)  # [Q]
        pre = None if pred_pre is None else self.objective.example_scores(pred_pre, ep.query_y)
        return {"group": ep.group, "family": ep.family, "value": rows.mean().item(),
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
        if "adapted" in scores[0]:  # eval_adapt_check: the share of episodes that adapted
            metrics["val/adapted"] = sum(s["adapted"] for s in scores) / len(scores)
        self.log_dict(metrics, rank_zero_only=True)

    def on_test_epoch_start(self) -> None:
        self._scores = []

    def test_step(self, ep: Episode, batch_idx: int) -> None:
        self._scores.append(self.evaluate_episode(ep))

    def on_test_epoch_end(self) -> None:
        """Per group: mean and 95% interval over its episodes (over the query examples of a
        group scored by one fixed episode), as `test_results` rows and `test/...` metrics."""
        scores = gather_lists(self._scores)
        by_group: dict[str, list[dict]] = defaultdict(list)
        for s in scores:
            by_group[s["group"]].append(s)
        m = self.objective.metric
        self.test_results, metrics = [], {}
        for group in sorted(by_group):
            rows = by_group[group]
            value, ci = mean_ci95([r["value"] for r in rows])
            if len(rows) == 1:  # one fixed episode (ARSC): the interval over its query examples
                ci = rows[0]["ci95_examples"]
            pre = (None if rows[0]["value_pre"] is None
                   else mean_ci95([r["value_pre"] for r in rows])[0])
            self.test_results.append({"group": group, "metric": m, "value": value, "ci95": ci,
                                      "value_pre": pre, "episodes": len(rows),
                                      "shots": rows[0]["shots"], "queries": rows[0]["queries"]})
            metrics.update({f"test/{group}/{m}": value, f"test/{group}/{m}_ci95": ci})
            if pre is not None:
                metrics[f"test/{group}/{m}_pre"] = pre
            if "adapted" in rows[0]:  # eval_adapt_check: the share of episodes that adapted
                adapted = [r["adapted"] for r in rows]
                metrics[f"test/{group}/adapted"] = sum(adapted) / len(adapted)
                self.test_results[-1]["adapted"] = int(sum(adapted))
        if scores:
            value, ci = mean_ci95([s["value"] for s in scores])
            metrics.update({f"test/{m}": value, f"test/{m}_ci95": ci})
        self.log_dict(metrics, rank_zero_only=True)
        for r in self.test_results:
            pre = "" if r["value_pre"] is None else f" (before adapting {r['value_pre']:.4f})"
            adapted = f", adapted in {r['adapted']}" if "adapted" in r else ""
            log.info("meta-test %-22s %s %.4f ± %.4f%s, %d episodes%s",
                     r["group"], m, r["value"], r["ci95"], pre, r["episodes"], adapted)
