"""OmegaConf resolvers the configs use (registered once, on import)."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


def data_dir(root: str) -> str:
    """`$METALEARN_DATA`, else `../shared/data` beside the clone, else `<root>/data`."""
    if os.environ.get("METALEARN_DATA"):
        return os.environ["METALEARN_DATA"]
    shared = Path(root).resolve().parent / "shared" / "data"
    return str(shared if shared.exists() else Path(root).resolve() / "data")


def register() -> None:
    """Make `${metalearn.data_dir:<root>}` available to Hydra configs."""
    if not OmegaConf.has_resolver("metalearn.data_dir"):
        OmegaConf.register_new_resolver("metalearn.data_dir", data_dir)


register()
