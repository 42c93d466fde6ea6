"""Training progress for a person watching a terminal, and for one reading a log file later.

On a terminal (or in Jupyter) rich draws a bar. Elsewhere (output redirected to a file, a pipe,
the API server's run logs) a bar writes nothing until its last frame, so a long run looks dead:
there `LogProgress` writes a plain line through `logging` every `every_seconds` instead (the
step, elapsed time, rate, time left and the progress-bar metrics), and one at each stage's end.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import rich
from pytorch_lightning.callbacks import RichProgressBar
from pytorch_lightning.callbacks.progress import ProgressBar

log = logging.getLogger(__name__)


def progress_bar(*, every_seconds: float = 30.0, **rich_kwargs: Any) -> ProgressBar:
    """A rich bar where stdout is a terminal or Jupyter, else plain lines every `every_seconds`.

    The config group callbacks' `rich_progress_bar` entry; `rich_kwargs` go to Lightning's
    RichProgressBar (refresh_rate, leave, theme ...).
    """
    console = rich.get_console()
    if console.is_terminal or console.is_jupyter:
        return StepsRichProgressBar(**rich_kwargs)
    return LogProgress(every_seconds=every_seconds)


def last_epoch(trainer: pl.Trainer, batches_per_epoch: float) -> int | None:
    """The index of the last epoch a fit will run, None where nothing bounds it.

    `max_epochs=-1` with `max_steps=N` (how every experiment here is set) bounds it by the steps:
    Lightning's own bar reads "Epoch 1/-2" there.
    """
    if trainer.max_epochs is not None and trainer.max_epochs >= 1:
        return trainer.max_epochs - 1
    if trainer.max_steps > 0 and 0 < batches_per_epoch < math.inf:
        return math.ceil(trainer.max_steps / batches_per_epoch) - 1
    return None


class StepsRichProgressBar(RichProgressBar):
    """Lightning's rich bar, its epoch counted to the last epoch the step limit allows."""

    def _get_train_description(self, current_epoch: int) -> str:
        last = last_epoch(self.trainer, self.trainer.num_training_batches)
        description = f"Epoch {current_epoch}" + (f"/{last}" if last is not None else "")
        # padded as Lightning pads it, so the bar does not jump between training and validation
        return f"{description:{len(self.validation_description)}}"


def duration(seconds: float) -> str:
    """`42 s`, `3m05s`, `1h02m`: a span of time as a log line reads it."""
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class LogProgress(ProgressBar):
    """Plain progress lines through `logging` (logger `metalearn.progress`), for output that is
    not a terminal: at the first step, then every `every_seconds`, and at the end of each stage."""

    STAGES = {"validate": "meta-validation", "test": "meta-test"}

    def __init__(self, every_seconds: float = 30.0) -> None:
        super().__init__()
        if not isinstance(every_seconds, (int, float)) or isinstance(every_seconds, bool) or not every_seconds > 0:
            raise ValueError("callbacks.rich_progress_bar.every_seconds must be a positive number of "
                             f"seconds, got {every_seconds!r}")
        self.every_seconds = float(every_seconds)
        self._enabled = True
        self._start = self._last = 0.0
        self._first_step = 0
        self._stage_start: dict[str, float] = {}
        self._stage_last: dict[str, float] = {}
        self._stage_done: dict[str, int] = {}

    def disable(self) -> None:  # Lightning disables it on every process but the first
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    # ---- training ---------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = self._last = time.monotonic()
        self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        now = time.monotonic()
        first = trainer.global_step == self._first_step + 1
        if self._enabled and (first or now - self._last >= self.every_seconds):
            self._last = now
            log.info("%s", self.train_line(trainer, pl_module, now))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._enabled:
            done = trainer.global_step - self._first_step
            log.info("training: %d steps in %s (step %d)", done,
                     duration(time.monotonic() - self._start), trainer.global_step)

    def train_line(self, trainer: pl.Trainer, pl_module: pl.LightningModule, now: float) -> str:
        """`step 12/150 (8%), 1m02s, 5.2 s/step, 11m58s left; train/query_acc 0.45`."""
        step, total = trainer.global_step, trainer.estimated_stepping_batches
        elapsed, done = now - self._start, trainer.global_step - self._first_step
        parts = [f"step {step}/{total} ({100 * step / total:.0f}%)" if total < math.inf else f"step {step}",
                 duration(elapsed)]
        if done > 0:
            per_step = elapsed / done
            parts.append(f"{per_step:.2f} s/step" if per_step < 10 else f"{per_step:.0f} s/step")
            if total < math.inf:
                parts.append(f"{duration(per_step * (total - step))} left")
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        scores = ", ".join(f"{k} {_number(v)}" for k, v in metrics.items())
        return ", ".join(parts) + (f"; {scores}" if scores else "")

    # ---- meta-validation and meta-test -------------------------------------------------------
    def _stage_begins(self, stage: str) -> None:
        self._stage_start[stage] = self._stage_last[stage] = time.monotonic()
        self._stage_done[stage] = 0

    def _stage_batch(self, stage: str, total: Callable[[], float]) -> None:
        if stage not in self._stage_start:
            return
        self._stage_done[stage] += 1
        now = time.monotonic()
        if self._enabled and now - self._stage_last[stage] >= self.every_seconds:
            self._stage_last[stage] = now
            count = total()  # read only for a line: Lightning works it out each time it is asked
            of = f"/{count:.0f}" if count < math.inf else ""
            log.info("%s: episode %d%s, %s", self.STAGES[stage], self._stage_done[stage], of,
                     duration(now - self._stage_start[stage]))

    def _stage_ends(self, stage: str, where: str = "") -> None:
        if stage in self._stage_start:
            started, done = self._stage_start.pop(stage), self._stage_done.pop(stage)
            if self._enabled:
                log.info("%s%s: %d episode%s in %s", self.STAGES[stage], where, done,
                         "" if done == 1 else "s", duration(time.monotonic() - started))

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stage_begins("validate")

    def on_validation_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                                batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not trainer.sanity_checking:
            self._stage_batch("validate", lambda: self.total_val_batches)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._stage_ends("validate", f" at step {trainer.global_step}")

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stage_begins("test")

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any,
                          batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._stage_batch("test", lambda: sum(trainer.num_test_batches))

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._stage_ends("test")


def _number(value: Any) -> str:
    """A metric as a log line shows it: 4 significant digits for a number."""
    if hasattr(value, "item") and getattr(value, "numel", lambda: 0)() == 1:
        value = value.item()  # a one-element tensor
    return f"{value:.4g}" if isinstance(value, float) else str(value)
