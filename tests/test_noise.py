"""The known messages a user cannot act on are dropped, one by one; their neighbours stay."""
from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import warnings

import datasets
import pytest
import pytorch_lightning as pl
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities._pytree import _tree_flatten

import metalearn.noise as noise
from metalearn.noise import DropMessages, quiet_known_noise


@pytest.fixture
def no_filters(monkeypatch):
    """Lightning's loggers without our filter, before and after the test, and reaching caplog
    whatever ran before in this process: a Hydra job's logging config may have disabled the
    loggers that existed (dictConfig's disable_existing_loggers) or set their level, Lightning
    stops its loggers' propagation where the root logger had no handler at its import, and its
    rank_zero_info says nothing off rank 0."""
    from lightning_fabric.utilities.rank_zero import rank_zero_only as fabric_rank_zero_only
    from pytorch_lightning.utilities.rank_zero import rank_zero_only

    for fn in (rank_zero_only, fabric_rank_zero_only):
        monkeypatch.setattr(fn, "rank", 0, raising=False)
    def strip() -> None:
        for name in noise.LIGHTNING_LOGGERS:
            logger = logging.getLogger(name)
            for f in [f for f in logger.filters if isinstance(f, DropMessages)]:
                logger.removeFilter(f)
    names = {part for name in noise.LIGHTNING_LOGGERS
             for part in (".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2))}
    saved = {n: (logging.getLogger(n).disabled, logging.getLogger(n).propagate, logging.getLogger(n).level)
             for n in names}
    for n in names:
        logger = logging.getLogger(n)
        logger.disabled, logger.propagate, logger.level = False, True, logging.NOTSET
    strip()
    yield
    strip()
    for n, (disabled, propagate, level) in saved.items():
        logger = logging.getLogger(n)
        logger.disabled, logger.propagate, logger.level = disabled, propagate, level


def messages_of_a_new_trainer(tmp_path, caplog) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.INFO):
        pl.Trainer(logger=CSVLogger(tmp_path), limit_val_batches=1.0, accelerator="cpu",
                   enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    return [r.getMessage() for r in caplog.records]


def test_lightnings_tip_and_limit_note_are_dropped_and_the_rest_kept(tmp_path, caplog, no_filters,
                                                                       monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # (the bars are another test's)
    monkeypatch.setenv("HF_DATASETS_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    before = messages_of_a_new_trainer(tmp_path, caplog)
    assert any("litlogger" in m for m in before)  # what a run printed
    assert "`Trainer(limit_val_batches=1.0)` was configured so 100% of the batches will be used.." in before
    quiet_known_noise()
    quiet_known_noise()  # twice: one filter
    assert sum(isinstance(f, DropMessages) for f in logging.getLogger(noise.LIGHTNING_LOGGERS[0]).filters) == 1
    after = messages_of_a_new_trainer(tmp_path, caplog)
    assert not any("litlogger" in m or "limit_val_batches" in m for m in after)
    assert after == [m for m in before if "litlogger" not in m and "limit_val_batches" not in m]
    assert any(m.startswith("GPU available") for m in after)  # the rest still shows


def test_a_limit_of_one_batch_is_still_said(tmp_path, caplog, no_filters):
    quiet_known_noise()
    caplog.clear()
    with caplog.at_level(logging.INFO):
        pl.Trainer(logger=False, limit_val_batches=1, accelerator="cpu", enable_progress_bar=False,
                   default_root_dir=tmp_path)
    assert "`Trainer(limit_val_batches=1)` was configured so 1 batch will be used." in caplog.messages


def test_the_leafspec_warning_is_dropped_and_other_future_warnings_kept():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _tree_flatten(1)
        assert any("LeafSpec" in str(w.message) for w in seen)  # what a run printed
        seen.clear()
        quiet_known_noise()
        _tree_flatten(1)
        warnings.warn("something else is deprecated", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["something else is deprecated"]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("stderr", "bars"), [(io.StringIO(), False), (Tty(), True)])
def test_hugging_face_bars_only_where_a_person_sees_them(monkeypatch, stderr, bars):
    monkeypatch.setenv("HF_DATASETS_DISABLE_PROGRESS_BARS", "")
    monkeypatch.delenv("HF_DATASETS_DISABLE_PROGRESS_BARS")  # restored after the test, set or not
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "")
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS")
    monkeypatch.setattr(sys, "stderr", stderr)
    datasets.enable_progress_bars()
    try:
        quiet_known_noise()
        assert datasets.is_progress_bar_enabled() is bars
        assert ("HF_DATASETS_DISABLE_PROGRESS_BARS" in os.environ) is not bars
    finally:
        datasets.enable_progress_bars()


def test_a_users_own_choice_of_bars_is_kept(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "0")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    datasets.enable_progress_bars()
    quiet_known_noise()
    assert datasets.is_progress_bar_enabled()


def test_processes_a_run_starts_drop_the_leafspec_warning_too(monkeypatch):
    monkeypatch.setenv("PYTHONWARNINGS", "default::DeprecationWarning")
    quiet_known_noise()
    quiet_known_noise()  # once in the variable
    assert os.environ["PYTHONWARNINGS"] == "default::DeprecationWarning," + noise.LEAFSPEC_ENV_FILTER
    code = ("import warnings; from pytorch_lightning.utilities._pytree import _tree_flatten; "
            "_tree_flatten(1); warnings.warn('kept', FutureWarning)")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert child.returncode == 0 and "LeafSpec" not in child.stderr and "kept" in child.stderr
