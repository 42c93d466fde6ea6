"""metalearn's meta-step as users run it: the algorithm's `training_step` inside `Trainer.fit`.

Each run is a fresh `Trainer` (built from the project's trainer config, without logger,
checkpoints or progress bar) fitting `steps` meta-steps from the same initial weights. The
clock runs from the start of batch `timed_from` to the end of the last batch, so Lightning's
loop between batches (fetching the next meta-batch, hooks, metric bookkeeping) is inside it
and the Trainer's setup is not.
"""
from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback

from bench.same_math import Params, Trace, snapshot
from bench.timing import Stopwatch, Timed
from metalearn.algorithms.episodic import EpisodicModule

for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
    logging.getLogger(name).setLevel(logging.WARNING)
# Expected here and harmless: the frozen trunk stays in eval mode; loaders run in-process.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")


class StepClock(Callback):
    """Times batches timed_from .. steps-1 of one fit."""

    def __init__(self, steps: int, timed_from: int) -> None:
        self.watch, self.steps, self.timed_from = Stopwatch(steps - timed_from), steps, timed_from

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.timed_from:
            self.watch.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx == self.steps - 1:
            self.watch.stop()


class Recorder(Callback):
    """Each step's meta-gradient (seen by an optimizer pre-step hook), logged scores, and
    before-adapting query forwards (within `counting`)."""

    def __init__(self, params: Callable[[], Params]) -> None:
        self.params, self.grads, self.scores = params, [], []
        self.pre_forwards: list[int] = []
        self._tasks = 0  # the meta-batch of the step running

    @contextmanager
    def counting(self, learner: EpisodicModule) -> Iterator[None]:
        """Within: each task whose query set `learner` forwards with the meta-weights
        (`outputs_before_adapting`; under vmap_tasks one call covers the meta-batch) counts
        to the step running."""
        forward = getattr(learner, "outputs_before_adapting", None)
        if forward is None:  # a learner without that forward (ProtoNet): nothing to count
            yield
            return
        batched = getattr(learner, "vmap_tasks", False)

        def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
            self.pre_forwards[-1] += self._tasks if batched else 1
            return forward(*args, **kwargs)

        learner.outputs_before_adapting = counted
        try:
            yield
        finally:
            del learner.outputs_before_adapting

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.pre_forwards.append(0)
        self._tasks = len(batch)

    def on_train_start(self, trainer, pl_module) -> None:
        def grab(optimizer, args, kwargs) -> None:
            self.grads.append({n: p.grad.detach().clone() for n, p in self.params().items()})

        for opt in trainer.optimizers:
            opt.register_step_pre_hook(grab)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Every step's scores, also those Lightning does not write (trainer.log_every_n_steps);
        # kept as they are until the fit ends: reading a tensor here would wait for a GPU.
        self.scores.append(dict(pl_module.train_window.last))

    def float_scores(self) -> list[dict[str, float]]:
        return [{k: float(v) for k, v in s.items()} for s in self.scores]


def make_trainer(cfg: DictConfig, steps: int, callbacks: list[Callback], root: str) -> pl.Trainer:
    """The project's trainer config for `steps` meta-steps, nothing written, no validation."""
    return hydra.utils.instantiate(
        cfg.trainer, default_root_dir=root, max_steps=steps, max_epochs=-1, logger=False,
        callbacks=callbacks, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)


class MetalearnFit:
    """An implementation (bench.timing.Implementation) running metalearn through Lightning."""

    name = "metalearn"
    equal_pre_forwards = True

    def __init__(self, cfg: DictConfig, learner: EpisodicModule, source: Any, init: dict,
                 name: str = "metalearn") -> None:
        self.cfg, self.learner, self.source, self.init = cfg, learner, source, init
        self.name = name

    def fit(self, steps: int, callbacks: list[Callback]) -> pl.Trainer:
        """A fresh Trainer fitting `steps` meta-steps from the initial weights."""
        self.learner.model.load_state_dict(self.init)
        with tempfile.TemporaryDirectory(prefix="metalearn-bench-") as root:
            trainer = make_trainer(self.cfg, steps, callbacks, root)
            trainer.fit(self.learner, train_dataloaders=self.source.loader(steps))
        if trainer.global_step != steps:
            raise RuntimeError(f"the fit took {trainer.global_step} steps, not {steps}")
        return trainer

    def run(self, steps: int, timed_from: int) -> tuple[Trace, Timed]:
        clock = StepClock(steps, timed_from)
        recorder = Recorder(self.learner.outer_parameters)
        self.learner.model.load_state_dict(self.init)
        start = snapshot(self.learner.outer_parameters())
        with recorder.counting(self.learner):
            self.fit(steps, [clock, recorder])
        final = snapshot(self.learner.outer_parameters())
        return (Trace(recorder.grads, recorder.float_scores(), start, final, recorder.pre_forwards),
                clock.watch.timed)


def initial_state(model: torch.nn.Module) -> dict:
    """A copy of the weights every run of every implementation starts from."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
