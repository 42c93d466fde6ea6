"""The resolved config as a rich tree, printed at the start of a run (`extras.print_config`)."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import rich.syntax
import rich.tree
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only
from rich.console import Console

log = logging.getLogger(__name__)

# The groups a reader looks for first; the rest follow in the config's own order.
FIRST = ("data", "model", "algorithm", "trainer", "callbacks", "logger", "paths")


def config_tree(cfg: DictConfig, first: Sequence[str] = FIRST) -> rich.tree.Tree:
    """One branch per top-level key, each holding its resolved YAML."""
    tree = rich.tree.Tree("config", style="bold", guide_style="dim")
    keys = [k for k in first if k in cfg] + [k for k in cfg if k not in first and k != "hydra"]
    for key in keys:
        node = cfg[key]  # a scalar comes back resolved
        text = OmegaConf.to_yaml(node, resolve=True) if OmegaConf.is_config(node) else (
            "null" if node is None else str(node))
        yaml = rich.syntax.Syntax(text.rstrip("\n"), "yaml", word_wrap=True)
        tree.add(key, style="bold").add(yaml)
    return tree


@rank_zero_only
def print_config_tree(cfg: DictConfig, save_dir: str | Path | None = None) -> None:
    """Print the tree on the console and, with save_dir, write it to config_tree.log there."""
    tree = config_tree(cfg)
    Console().print(tree)
    if save_dir is not None:
        path = Path(save_dir) / "config_tree.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as fh:
            Console(file=fh, width=200, color_system=None).print(tree)
