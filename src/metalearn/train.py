"""`train(cfg)`: build everything from the Hydra config, meta-train, then meta-test."""
from __future__ import annotations

import logging
import pickle
import warnings
from pathlib import Path

import hydra
from hydra.errors import InstantiationException
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

import metalearn.resolvers  # noqa: F401  (registers ${metalearn.data_dir:...})
from metalearn.config_tree import print_config_tree
from metalearn.registry.record import record_attempt

log = logging.getLogger(__name__)
# The frozen trunk stays in eval mode on purpose (SplitModel.train); Lightning warns about it.
warnings.filterwarnings("ignore", message=r"Found \d+ module\(s\) in eval mode")


def build(node: DictConfig, **kwargs):
    """`hydra.utils.instantiate`, re-raising a constructor's own error unwrapped.

    Our constructors validate their arguments and name the config key in the message; Hydra's
    wrapper would bury that under its own traceback text.
    """
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, (ValueError, TypeError, FileNotFoundError, ImportError)):
            raise err.__cause__ from None
        raise


def instantiate_dict(group: DictConfig | None) -> list:
    """Instantiate each `_target_` entry of a config group (loggers, callbacks)."""
    if not group:
        return []
    return [build(c) for c in group.values() if c and "_target_" in c]


def train(cfg: DictConfig) -> dict[str, float]:
    """Meta-train (if `cfg.train`) and meta-test (if `cfg.test`); returns the final metrics."""
    with record_attempt(cfg):  # an attempt row in the registry; a failure keeps its traceback
        return _train(cfg)


def _train(cfg: DictConfig) -> dict[str, float]:
    if (cfg.get("extras") or {}).get("print_config"):  # conf/extras: the resolved config tree
        print_config_tree(cfg, save_dir=cfg.paths.output_dir)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path:
        check_checkpoint(ckpt_path)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = build(cfg.data)
    datamodule.prepare_data()
    datamodule.setup("fit")  # every data check runs here, before any model is built
    model = build(cfg.model)
    learner = build(cfg.algorithm, model=model)
    loggers = instantiate_dict(cfg.get("logger"))
    callbacks = instantiate_dict(cfg.get("callbacks"))
    trainer: pl.Trainer = build(cfg.trainer, logger=loggers, callbacks=callbacks)
    for lg in loggers:
        lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))

    if cfg.get("train", True):
        trainer.fit(learner, datamodule=datamodule, ckpt_path=ckpt_path)
        ckpt_path = best_checkpoint(trainer) or None
    if cfg.get("test", True):
        if not cfg.get("train", True) and ckpt_path is None:
            log.info("meta-testing the model as built, with no meta-training")
        trainer.test(learner, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    return {k: float(v) for k, v in trainer.callback_metrics.items()}


def check_checkpoint(path: str) -> None:
    """A checkpoint that exists and loads as plain weights and numbers, else an error naming it.

    Loaded with `weights_only=True` (PyTorch's restricted unpickler): a checkpoint file runs
    no code, whoever wrote it.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"ckpt_path {path}: no such checkpoint file")
    try:
        torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"ckpt_path {path}: cannot load it as a checkpoint ({first[:300]})") from exc


def best_checkpoint(trainer: pl.Trainer) -> str | None:
    """The best checkpoint by the monitored metric, else the latest one, else None."""
    callbacks = trainer.checkpoint_callbacks  # the monitored one first (conf/callbacks)
    for path in [cb.best_model_path for cb in callbacks] + [cb.last_model_path for cb in callbacks]:
        if path and Path(path).exists():
            return path
    return None
