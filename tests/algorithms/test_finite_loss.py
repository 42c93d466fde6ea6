"""A meta-training loss that is not finite fails the run, naming the loss and the step:
`metalearn train ... algorithm.inner_lr=nan` used to end `completed` with a null test MSE."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from metalearn.algorithms.finite import NonFiniteLoss, check_finite
from metalearn.registry import Store, schema

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("overrides", "loss"), [
    (["experiment=maml_sinusoid", "algorithm.inner_lr=nan"], "train/query_loss"),
    (["experiment=finetune_sinusoid", "algorithm.optimizer.lr=inf"], "train/loss"),
    # no write during training: the steps left unwritten are checked when training ends
    (["experiment=fomaml_sinusoid", "algorithm.inner_lr=nan", "trainer.log_every_n_steps=100"],
     "train/query_loss"),
])
def test_a_non_finite_loss_fails_the_run_by_name(tmp_path: Path, sqlite_url: str, overrides: list[str],
                                                 loss: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "metalearn.run", *overrides, "debug=fast", f"paths.log_dir={tmp_path}/logs",
         "callbacks.rich_progress_bar=null", f"registry.url={sqlite_url}"],
        cwd=tmp_path, env=dict(os.environ, PROJECT_ROOT=str(ROOT)), capture_output=True, text=True,
        timeout=600, check=False)
    assert proc.returncode != 0, proc.stdout[-2000:]
    (row,) = Store(sqlite_url).list_attempts()
    assert row["status"] == schema.FAILED, row
    assert "NonFiniteLoss" in row["error"] and f"{loss} is " in row["error"], row["error"][-2000:]
    assert "at step" in row["error"]


def test_check_finite_names_the_first_loss_that_is_not() -> None:
    check_finite({"query_loss": torch.tensor(0.5), "support_loss": float("nan")}, step=3)  # not a loss
    with pytest.raises(NonFiniteLoss, match=r"train/query_loss is inf at step 3"):
        check_finite({"query_loss": torch.tensor(float("inf")), "query_acc": 0.5}, step=3)
    with pytest.raises(NonFiniteLoss, match=r"train/loss is nan at step 7"):
        check_finite({"loss": float("nan")}, step=7)
