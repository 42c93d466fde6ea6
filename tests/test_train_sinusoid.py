"""Sinusoid regression end to end: every experiment runs debug=fast; the checkpoint monitor and
the value returned to a sweeper are val/mse, minimised."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from pytorch_lightning import Callback

from metalearn.train import train
from tests.conftest import compose_config


class Validations(Callback):
    """Writes every val/mse and what the checkpoint callback made of them to `path` (JSON)."""

    def __init__(self, path: str) -> None:
        self.path, self.values = Path(path), []

    def on_validation_end(self, trainer, pl_module) -> None:
        self.values.append(float(trainer.callback_metrics["val/mse"]))

    def on_fit_end(self, trainer, pl_module) -> None:
        cb = trainer.checkpoint_callback
        self.path.write_text(json.dumps({
            "values": self.values, "monitor": cb.monitor, "mode": cb.mode,
            "best": float(cb.best_model_score), "path": cb.best_model_path}))


def sinusoid_cfg(tmp_path, experiment, *overrides):
    return compose_config([f"experiment={experiment}", "debug=fast", f"paths.log_dir={tmp_path}/logs",
                           "callbacks.rich_progress_bar=null", "registry=off", "logger=csv",
                           *overrides], tmp_path / "out")


def test_maml_sinusoid_debug_fast_monitors_and_returns_val_mse_minimised(tmp_path):
    spy = tmp_path / "validations.json"
    cfg = sinusoid_cfg(tmp_path, "maml_sinusoid",
                       "+callbacks.validations._target_=tests.test_train_sinusoid.Validations",
                       f"+callbacks.validations.path={spy}")
    assert cfg.optimized_metric == "val/mse"
    metrics = train(cfg)
    ckpt = json.loads(spy.read_text())
    values = ckpt["values"]
    assert len(values) == 2 and values[0] != values[1]  # two validations that disagree
    assert ckpt["monitor"] == "val/mse" and ckpt["mode"] == "min"
    assert ckpt["best"] == pytest.approx(min(values))
    assert f"step{2 * (1 + values.index(min(values))):06d}" in ckpt["path"]
    # what run.py returns: the score of the best checkpoint (the one meta-tested), not the last
    assert metrics[cfg.optimized_metric] == pytest.approx(min(values))
    assert min(values) != values[-1]  # the case that tells the two apart
    assert {"test/mse", "test/mse_ci95", "test/sinusoid/mse", "test/sinusoid/mse_pre"} <= set(metrics)
    assert not any("acc" in k for k in metrics)
    (log,) = (tmp_path / "out").glob("csv/*/*/metrics.csv")
    header = next(csv.reader(log.open()))
    assert {"train/query_mse", "train/query_mse_pre", "train/query_loss", "val/mse_ci95"} <= set(header)


@pytest.mark.parametrize("experiment", ["reptile_sinusoid", "fomaml_sinusoid", "finetune_sinusoid"])
def test_other_sinusoid_experiments_run_debug_fast(tmp_path, experiment):
    metrics = train(sinusoid_cfg(tmp_path, experiment, "test=false"))
    assert metrics["val/mse"] > 0


@pytest.mark.parametrize("overrides, message", [
    (["algorithm=protonet"], "ProtoNet serves objective=classification only"),
    (["objective=classification"],
     "data: SinusoidEpisodes serves objective=regression only, not objective=classification"),
])
def test_what_cannot_serve_the_sinusoid_is_refused_before_anything_is_built(tmp_path, overrides,
                                                                            message):
    with pytest.raises(ValueError, match=message):
        train(sinusoid_cfg(tmp_path, "maml_sinusoid", *overrides))


def test_bf16_autocast_trains_and_scores_regression(tmp_path):
    """`trainer.precision=bf16-mixed`: the adapted predictions come out of autocast in bfloat16
    and are stored into float32 query tensors (once an error: "Index put requires ...")."""
    metrics = train(sinusoid_cfg(tmp_path, "maml_sinusoid", "trainer.precision=bf16-mixed"))
    assert 0 < metrics["test/mse"] < float("inf")
    assert metrics["test/sinusoid/mse"] != metrics["test/sinusoid/mse_pre"]  # it adapted
