"""EpisodicModule: the Lightning plumbing every algorithm shares.

An algorithm says how it trains (`training_step`) and how it predicts a query set from an
episode (`query_predictions`); this module runs the model on episodes (batch statistics from
the support set only, unless transductive), builds the optimizer, seeds each step, hands
training scores to their window (`algorithms.train_scores`) and evaluation episodes to their
records (`algorithms.evaluation`), aggregated per group with 95% intervals and logged as
`val/<metric>` and `test/<group>/<metric>` (`algorithms.group_scores`). Gradient-based
adaptation lives in `algorithms.gradient`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytorch_lightning as pl
import torch

from metalearn.algorithms.evaluation import episode_record
from metalearn.algorithms.finite import check_finite
from metalearn.algorithms.group_scores import gather_lists, group_results, log_group_results, validation_metrics
from metalearn.algorithms.inner_loop import Params, embed_with, outputs_with
from metalearn.algorithms.train_scores import Score, ScoreWindow
from metalearn.data.batches import row_chunks
from metalearn.data.episode import Episode
from metalearn.models.norm import has_episode_norm, support_statistics
from metalearn.models.split import SplitModel
from metalearn.models.top import Top
from metalearn.objectives import Objective, require_served


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
        *,
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

    # ---- training scores (algorithms.train_scores) --------------------------------------------
    def log_train(self, scores: Mapping[str, Score], count: int, prog_bar: str | None = None) -> None:
        """This meta-step's training scores (each a mean over its `count` tasks or examples),
        logged as `train/<name>` on the steps Lightning writes (`trainer.log_every_n_steps`):
        each the mean over the steps since the last write that report it (see
        algorithms.train_scores)."""
        self.train_window.add_step(scores, count)
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

    # ---- evaluation -------------------------------------------------------------------------
    def query_predictions(self, ep: Episode) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The episode's query predictions (shaped like `query_y`), and those before adapting
        to the support set (None where nothing adapts; see `algorithms.evaluation`)."""
        raise NotImplementedError

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
        return episode_record(self.objective, ep, *self.query_predictions(ep))

    def on_validation_epoch_start(self) -> None:
        self._scores = []

    def validation_step(self, ep: Episode, batch_idx: int) -> None:
        # The fixed meta-validation episodes come again at every check: their trunk outputs
        # are kept for the next (model.cache_trunk; the meta-test's are seen once, not kept).
        with self.model.reusing_trunk_outputs():
            self._scores.append(self.evaluate_episode(ep))

    def on_validation_epoch_end(self) -> None:
        records = gather_lists(self._scores)
        if records:
            self.log_dict(validation_metrics(records, self.objective.metric), rank_zero_only=True)

    def on_test_epoch_start(self) -> None:
        self._scores = []

    def test_episode(self, ep: Episode) -> dict[str, Any]:
        """One meta-test episode's record: `evaluate_episode`'s (a learner that adapts adds the
        scores after each of `algorithm.eval_score_steps`: `algorithms.step_scores`)."""
        return self.evaluate_episode(ep)

    def test_step(self, ep: Episode, batch_idx: int) -> None:
        self._scores.append(self.test_episode(ep))

    def on_test_epoch_end(self) -> None:
        """Per group: mean and 95% interval over its episodes, as `test_results` rows (what the
        registry keeps) and `test/...` metrics (`algorithms.group_scores`)."""
        metric = self.objective.metric
        self.test_results, metrics = group_results(gather_lists(self._scores), metric)
        self.log_dict(metrics, rank_zero_only=True)
        log_group_results(self.test_results, metric)
