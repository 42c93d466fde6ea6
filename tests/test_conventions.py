"""The Lightning-Hydra conventions: logger=wandb|mlflow, debug=limit|overfit|profiler,
trainer=mps, callbacks=none|early_stopping, and extras.print_config."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.profilers import SimpleProfiler

from metalearn.config_tree import print_config_tree
from metalearn.train import build, instantiate_dict, train
from tests.conftest import compose_config


def _cfg(tmp_path: Path, *overrides: str):
    return compose_config(["experiment=reptile_amazon", f"paths.log_dir={tmp_path}/logs",
                           *overrides], tmp_path / "out")


@pytest.mark.parametrize("debug", ["limit", "overfit", "profiler"])
def test_debug_modes_compose_to_a_short_cpu_run(tmp_path: Path, debug: str) -> None:
    cfg = _cfg(tmp_path, f"debug={debug}", "algorithm=reptile")  # plain Reptile: an annealed step
    assert cfg.task_name == "debug" and cfg.trainer.accelerator == "cpu"
    assert cfg.extras.print_config is True
    trainer = cfg.trainer
    # a few steps, and the outer step size annealed over those (not over -1: zero after one)
    assert 0 < trainer.max_steps <= 60 and cfg.algorithm.scheduler.total_steps == trainer.max_steps
    if debug == "overfit":
        assert trainer.overfit_batches == 3
    else:
        assert trainer.limit_train_batches <= 5 and trainer.limit_test_batches == 4
    if debug == "profiler":
        assert isinstance(build(trainer.profiler), SimpleProfiler)


def test_overfit_meta_trains_on_the_same_episodes_every_epoch(tmp_path: Path) -> None:
    """Lightning's overfit_batches alone would still draw new episodes each step."""
    cfg = _cfg(tmp_path, "debug=fast", "data.steps_per_epoch=3")
    datamodule = build(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")

    def first_epoch_keys(trainer: SimpleNamespace) -> list:
        datamodule.trainer = trainer
        return list(datamodule.train_dataloader().batch_sampler)

    fresh = first_epoch_keys(SimpleNamespace(global_step=0, overfit_batches=0))
    later = first_epoch_keys(SimpleNamespace(global_step=6, overfit_batches=0))
    overfit = first_epoch_keys(SimpleNamespace(global_step=6, overfit_batches=3))
    assert later != fresh  # normally every epoch takes new episodes ...
    assert overfit == fresh  # ... and under debug=overfit the same ones again


def test_trainer_mps_composes() -> None:
    cfg = compose_config(["experiment=reptile_omniglot", "trainer=mps"], Path("/nonexistent"))
    assert cfg.trainer.accelerator == "mps" and cfg.trainer.devices == 1
    assert cfg.trainer.inference_mode is False  # the default trainer's settings underneath


def test_callbacks_none_keeps_only_the_registry(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "callbacks=none")
    assert list(cfg.callbacks) == ["registry"]
    assert list(_cfg(tmp_path, "callbacks=none", "registry=off").callbacks or {}) == []


def test_early_stopping_watches_the_checkpoint_metric(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "callbacks=early_stopping", "callbacks.model_checkpoint.monitor=val/loss",
               "callbacks.model_checkpoint.mode=min", "callbacks.rich_progress_bar=null")
    callbacks = instantiate_dict(cfg.callbacks)
    (stop,) = [c for c in callbacks if isinstance(c, EarlyStopping)]
    best = next(c for c in callbacks if isinstance(c, ModelCheckpoint) and c.monitor)
    assert (stop.monitor, stop.mode) == (best.monitor, best.mode) == ("val/loss", "min")
    assert stop.patience == 5


def test_print_config_tree_prints_and_saves_the_resolved_config(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the paths on one line each
    cfg = _cfg(tmp_path, "debug=fast")
    print_config_tree(cfg, save_dir=tmp_path / "run")
    out = capsys.readouterr().out
    saved = (tmp_path / "run" / "config_tree.log").read_text()
    for text in (out, saved):
        assert "algorithm" in text and "reptile" in text
        assert str(tmp_path / "logs") in text  # interpolations resolved
        assert "${" not in text
    assert out.index("data") < out.index("trainer")  # the main groups first


def _wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """wandb offline, its caches in tmp_path, no error reports sent (older versions try)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_ERROR_REPORTING", "false")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_DIR", raising=False)  # the logger's save_dir decides
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))


@pytest.mark.slow
def test_wandb_offline_run_writes_its_files(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb", reason="wandb is not installed (the loggers extra)")
    _wandb_offline(tmp_path, monkeypatch)
    cfg = _cfg(tmp_path, "debug=fast", "logger=wandb", "registry=off",
               "callbacks.rich_progress_bar=null", "test=false", "trainer.max_steps=2")
    (tmp_path / "out").mkdir()  # the run folder, which Hydra makes in a run
    train(cfg)
    import wandb
    wandb.finish()
    (run,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    assert list(run.glob("*.wandb")), sorted(p.name for p in run.iterdir())


@pytest.mark.slow
def test_mlflow_local_store_run_records_metrics(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="mlflow is not installed (the loggers extra)")
    cfg = _cfg(tmp_path, "debug=fast", "logger=mlflow", "registry=off",
               "callbacks.rich_progress_bar=null", "test=false", "trainer.max_steps=2")
    train(cfg)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=cfg.logger.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name("reptile_amazon")
    (run,) = client.search_runs([experiment.experiment_id])
    assert "train/query_loss" in run.data.metrics
    assert run.data.params["algorithm/_target_"].endswith("Reptile")


def _logger(tmp_path: Path, name: str):
    cfg = _cfg(tmp_path, "debug=fast", f"logger={name}", "registry=off")
    from omegaconf import OmegaConf

    (tmp_path / "out").mkdir(exist_ok=True)  # the run folder, which Hydra makes in a run
    (logger,) = instantiate_dict(cfg.logger)
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))  # as train() does
    logger.log_metrics({"train/query_loss": 0.5}, step=1)
    logger.finalize("success")
    return cfg, logger


def test_wandb_logger_from_its_config_writes_offline(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The config builds a working logger (fast; the training run above is the slow check)."""
    pytest.importorskip("wandb", reason="wandb is not installed (the loggers extra)")
    _wandb_offline(tmp_path, monkeypatch)
    _logger(tmp_path, "wandb")
    import wandb

    wandb.finish()
    (run,) = (tmp_path / "out" / "wandb").glob("offline-run-*")
    assert list(run.glob("*.wandb"))


def test_mlflow_logger_from_its_config_records_in_sqlite(tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="mlflow is not installed (the loggers extra)")
    (tmp_path / "logs").mkdir()  # as Hydra's run folder below it has made it in a run
    cfg, logger = _logger(tmp_path, "mlflow")
    assert (tmp_path / "logs" / "mlflow.db").is_file()
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=cfg.logger.mlflow.tracking_uri).get_run(logger.run_id)
    assert run.data.metrics["train/query_loss"] == 0.5
    assert run.data.params["data/shots"] == "5"
