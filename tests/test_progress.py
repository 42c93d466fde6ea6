"""Progress: a rich bar on a terminal, plain log lines elsewhere, epochs counted to the step limit."""
from __future__ import annotations

import io
import logging
import math
from types import SimpleNamespace

import pytest
from rich.console import Console

import metalearn.progress as progress
from metalearn.progress import LogProgress, StepsRichProgressBar, duration, last_epoch, progress_bar


def test_a_terminal_gets_the_rich_bar_and_a_file_gets_plain_lines(monkeypatch):
    terminal = Console(file=io.StringIO(), force_terminal=True, force_jupyter=False)
    monkeypatch.setattr(progress.rich, "get_console", lambda: terminal)
    assert isinstance(progress_bar(every_seconds=5, refresh_rate=2), StepsRichProgressBar)
    redirected = Console(file=io.StringIO(), force_terminal=False, force_jupyter=False)
    monkeypatch.setattr(progress.rich, "get_console", lambda: redirected)
    bar = progress_bar(every_seconds=5)
    assert isinstance(bar, LogProgress) and bar.every_seconds == 5.0


@pytest.mark.parametrize("bad", [0, -1, "often", None, True])
def test_a_bad_interval_is_named(bad):
    with pytest.raises(ValueError, match=r"callbacks\.rich_progress_bar\.every_seconds must be a positive"):
        LogProgress(every_seconds=bad)


@pytest.mark.parametrize(("max_epochs", "max_steps", "batches", "expected"), [
    (-1, 4, 2, 1),        # debug=fast: 4 steps of 2 per epoch, epochs 0 and 1 (Lightning's bar: "1/-2")
    (-1, 150, 75, 1),
    (-1, 5, 2, 2),        # a last, partial epoch
    (3, -1, 10, 2),       # an epoch limit as Lightning counts it
    (-1, -1, 10, None),   # nothing bounds the fit
    (-1, 4, math.inf, None),
])
def test_last_epoch(max_epochs, max_steps, batches, expected):
    trainer = SimpleNamespace(max_epochs=max_epochs, max_steps=max_steps)
    assert last_epoch(trainer, batches) == expected


def test_the_rich_bar_counts_epochs_to_the_step_limit():
    bar = StepsRichProgressBar()
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=4, num_training_batches=2)
    assert bar._get_train_description(1).strip() == "Epoch 1/1"
    # the last, partial epoch of 5 steps (Lightning's total_train_batches shrinks to 1 there)
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=5, num_training_batches=2, global_step=4)
    assert bar._get_train_description(2).strip() == "Epoch 2/2"
    bar._trainer = SimpleNamespace(max_epochs=-1, max_steps=-1, num_training_batches=2)
    assert bar._get_train_description(7).strip() == "Epoch 7"


@pytest.mark.parametrize(("seconds", "text"), [(2.34, "2.3 s"), (42.4, "42 s"), (185, "3m05s"),
                                               (3725, "1h02m")])
def test_duration(seconds, text):
    assert duration(seconds) == text


def test_plain_lines_at_the_first_step_then_every_interval(monkeypatch, caplog):
    clock = iter([0.0, 1.0, 2.0, 40.0, 41.0, 50.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = LogProgress(every_seconds=30)
    trainer = SimpleNamespace(global_step=0, estimated_stepping_batches=150, num_training_batches=75,
                              progress_bar_metrics={"train/query_acc": 0.45}, loggers=[])
    bar._trainer = trainer
    caplog.set_level(logging.INFO, logger="metalearn.progress")
    bar.on_train_start(trainer, None)                          # t = 0
    for step in (1, 2, 3, 4):                                  # t = 1, 2, 40, 41
        trainer.global_step = step
        bar.on_train_batch_end(trainer, None, None, None, step - 1)
    bar.on_train_end(trainer, None)                            # t = 50
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "step 1/150 (1%), 1.0 s, 1.00 s/step, 2m29s left; train/query_acc 0.45",
        "step 3/150 (2%), 40 s, 13 s/step, 32m40s left; train/query_acc 0.45",
        "training: 4 steps in 50 s (step 4)",
    ]


def test_a_disabled_bar_writes_nothing(caplog):
    bar = LogProgress()
    bar.disable()  # what Lightning does on every DDP process but the first
    trainer = SimpleNamespace(global_step=0, estimated_stepping_batches=4, progress_bar_metrics={},
                              loggers=[], sanity_checking=False, num_test_batches=[2])
    bar._trainer = trainer
    caplog.set_level(logging.INFO, logger="metalearn.progress")
    bar.on_train_start(trainer, None)
    trainer.global_step = 1
    bar.on_train_batch_end(trainer, None, None, None, 0)
    bar.on_train_end(trainer, None)
    bar.on_test_start(trainer, None)
    bar.on_test_batch_end(trainer, None, None, None, 0)
    bar.on_test_end(trainer, None)
    assert caplog.records == []


def test_stage_lines_count_episodes(monkeypatch, caplog):
    clock = iter([0.0, 1.0, 2.0, 10.0, 11.0, 12.0, 13.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = LogProgress(every_seconds=30)
    trainer = SimpleNamespace(sanity_checking=False, global_step=75, num_test_batches=[2])
    bar._trainer = trainer
    caplog.set_level(logging.INFO, logger="metalearn.progress")
    bar.on_validation_start(trainer, None)                       # t = 0
    bar.on_validation_batch_end(trainer, None, None, None, 0)    # t = 1
    bar.on_validation_end(trainer, None)                         # t = 2
    bar.on_test_start(trainer, None)                             # t = 10
    bar.on_test_batch_end(trainer, None, None, None, 0)          # t = 11
    bar.on_test_batch_end(trainer, None, None, None, 1)          # t = 12
    bar.on_test_end(trainer, None)                               # t = 13
    assert caplog.messages == ["meta-validation at step 75: 1 episode in 2.0 s",
                               "meta-test: 2 episodes in 3.0 s"]


def test_a_long_stage_says_how_far_it_is(monkeypatch, caplog):
    clock = iter([0.0, 5.0, 31.0, 40.0, 62.0, 70.0])
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    bar = LogProgress(every_seconds=30)
    trainer = SimpleNamespace(num_test_batches=[90])
    bar._trainer = trainer
    caplog.set_level(logging.INFO, logger="metalearn.progress")
    bar.on_test_start(trainer, None)                             # t = 0
    for i in range(4):                                           # t = 5, 31, 40, 62
        bar.on_test_batch_end(trainer, None, None, None, i)
    bar.on_test_end(trainer, None)                               # t = 70
    assert caplog.messages == ["meta-test: episode 2/90, 31 s", "meta-test: episode 4/90, 1m02s",
                               "meta-test: 4 episodes in 1m10s"]
