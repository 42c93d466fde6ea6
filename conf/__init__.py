"""The Hydra configs shipped with metalearn (`pkg://metalearn.conf`): one group per kind of object.

A package, so an installed wheel holds them and Hydra finds them from any folder. Importing it
registers the resolvers the configs use, as Hydra imports it before composing.
"""
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

import metalearn.resolvers  # noqa: F401  (train.yaml's hydra.searchpath uses one at composition)

CONFIG_DIR = Path(__file__).resolve().parent  # holds train.yaml
CONFIG_NAME = "train"


def compose_train(overrides: Sequence[str], return_hydra_config: bool = False) -> DictConfig:
    """`train.yaml` with `overrides`, composed as `run.py` composes it but without running
    anything or making a run folder (for tools that read configs: drift labels, the bench)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            return compose(CONFIG_NAME, overrides=list(overrides),
                           return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()
