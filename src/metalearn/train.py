"""`train(cfg)`: build everything from the Hydra config, meta-train, then meta-test."""
from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.utilities import rank_zero_only
from torch.utils.tensorboard.summary import hparams

import metalearn.resolvers  # noqa: F401  (registers ${metalearn.data_dir:...}, ${metalearn.log_version:})
from metalearn.checkpoint_file import check_checkpoint
from metalearn.config_tree import print_config_tree
from metalearn.flat_config import flatten
from metalearn.instantiate import build, instantiate_dict
from metalearn.noise import quiet_known_noise
from metalearn.objectives import require_served
from metalearn.threads import limited_threads

log = logging.getLogger(__name__)
# The frozen trunk stays in eval mode on purpose (SplitModel.train); Lightning warns about it.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


def train(cfg: DictConfig) -> dict[str, float]:
    """Meta-train (if `cfg.train`), meta-validate (if `cfg.validate`) and meta-test (if
    `cfg.test`); returns the final metrics.

    On `cfg.threads` torch threads (metalearn.threads: `auto` is one, or `$OMP_NUM_THREADS`);
    the known messages a user cannot act on are left out (metalearn.noise). Records nothing
    itself: the config's loggers and callbacks do, and under run.py the run registry's Hydra
    callback opens and ends the attempt around this call (conf/registry/).
    """
    quiet_known_noise()
    with limited_threads(cfg.get("threads", "auto")):
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, float]:
    if (cfg.get("extras") or {}).get("print_config"):  # config group extras: the resolved config tree
        print_config_tree(cfg, save_dir=cfg.paths.output_dir)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        check_checkpoint(ckpt_path)
    pl.seed_everything(cfg.seed, workers=True)
    objective = build(cfg.objective)
    for key in ("algorithm", "data"):  # can they serve it? (say so before anything is built)
        require_served(objective, get_class(cfg[key]._target_), key)
    datamodule = build(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # every data check runs here, before any model is built
    model = build(cfg.model)
    learner = build(cfg.algorithm, model=model, objective=objective)
    loggers = instantiate_dict(cfg.get("logger"))
    callbacks = instantiate_dict(cfg.get("callbacks"))
    trainer: pl.Trainer = build(cfg.trainer, logger=loggers, callbacks=callbacks)
    config = OmegaConf.to_container(cfg, resolve=True)
    for lg in loggers:
        lg.log_hyperparams(config)

    metrics: dict[str, float] = {}  # the last value of each, from meta-training then meta-test
    if cfg.get("train", True):
        trainer.fit(learner, datamodule=datamodule, ckpt_path=ckpt_path)
        metrics.update(_floats(trainer.callback_metrics))  # the test stage starts them afresh
        metrics.update(best_scores(trainer))  # what a sweeper optimizes: the kept checkpoint's
        ckpt_path = best_checkpoint(trainer) or None
    if cfg.get("validate", False):  # e.g. a checkpoint's meta-validation at another data.shots
        trainer.validate(learner, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics.update(_floats(trainer.callback_metrics))
    if cfg.get("test", True):
        if not cfg.get("train", True) and ckpt_path is None:
            log.info("meta-testing the model as built, with no meta-training")
        trainer.test(learner, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        metrics.update(_floats(trainer.callback_metrics))
    log_final_hparams(loggers, config, metrics)
    return metrics


def best_scores(trainer: pl.Trainer) -> dict[str, float]:
    """The monitored metric's value at the best checkpoint, for each monitoring callback: the
    checkpoint meta-tested, so the score a sweep compares is the one that was tested."""
    return {cb.monitor: float(cb.best_model_score) for cb in trainer.checkpoint_callbacks
            if cb.monitor and cb.best_model_score is not None}


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint by the monitored metric, else the latest one, else None."""
    callbacks = trainer.checkpoint_callbacks  # the monitored one first (config group callbacks)
    for path in [cb.best_model_path for cb in callbacks] + [cb.last_model_path for cb in callbacks]:
        if path and Path(path).exists():
            return path
    return None


def log_final_hparams(loggers: list, config: dict[str, Any], metrics: dict[str, float]) -> None:
    """The resolved config, with the final metrics, in TensorBoard's HPARAMS tab.

    Only the plugin's records are written (config keys dotted as in overrides): the tab takes
    each metric's value from the run's own scalars, so no point is added to their curves (as
    Lightning's `log_hyperparams(params, metrics)` would).
    """
    if not metrics:
        return
    params = {k: v if isinstance(v, (int, float, str)) and not isinstance(v, bool) else json.dumps(v)
              for k, v in flatten(config).items()}
    records = hparams(params, metrics)  # experiment, session start, session end
    for lg in loggers:
        if isinstance(lg, TensorBoardLogger) and rank_zero_only.rank == 0:
            writer = lg.experiment._get_file_writer()  # as Lightning's log_hyperparams does
            for record in records:
                writer.add_summary(record)
            lg.experiment.flush()


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items()}
