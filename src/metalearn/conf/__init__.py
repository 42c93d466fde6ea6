"""The Hydra configs shipped with metalearn (`pkg://metalearn.conf`): one group per kind of object.

A package, so an installed wheel holds them and Hydra finds them from any folder. Importing it
registers the resolvers the configs use, as Hydra imports it before composing.
"""
from pathlib import Path

import metalearn.resolvers  # noqa: F401  (train.yaml's hydra.searchpath uses one at composition)

CONFIG_DIR = Path(__file__).resolve().parent  # holds train.yaml
CONFIG_NAME = "train"
