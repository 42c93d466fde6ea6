"""Shared fixtures: the real Hydra config, composed as `run.py` would, and a tiny episode maker."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))

import metalearn.resolvers  # noqa: E402,F401
from metalearn.episode import Episode  # noqa: E402


def compose_config(overrides: list[str], out_dir: Path) -> DictConfig:
    """`conf/train.yaml` with overrides, its Hydra runtime dir set to `out_dir`."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(out_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def make_cfg(tmp_path):
    """Compose the real config for a fast run writing only under tmp_path."""
    def make(*overrides: str, out: str = "out") -> DictConfig:
        return compose_config(
            ["experiment=reptile_amazon", "debug=fast", f"paths.log_dir={tmp_path}/logs",
             "callbacks.rich_progress_bar=null", *overrides],
            tmp_path / out)
    return make


def toy_episode(seed: int, n: int = 6, dim: int = 3, family: str = "toy/t0") -> Episode:
    """A 2-way episode of random points (the trunk is the identity)."""
    g = torch.Generator().manual_seed(seed)
    xs, xq = torch.randn(n, dim, generator=g), torch.randn(n, dim, generator=g)
    ys = torch.tensor([0, 1] * (n // 2))
    yq = torch.tensor([1, 0] * (n // 2))
    return Episode(xs, ys, xq, yq, family=family, domain=family.split("/")[0],
                   ways=2, shots=n // 2, queries=n // 2)
