"""The project's own Hydra configs, composed as `run.py` would, so the bench measures the
algorithms with the settings the experiments use."""
from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from omegaconf import DictConfig

ROOT = Path(__file__).resolve().parents[2]


def experiment(name: str, *overrides: str) -> DictConfig:
    """The packaged `train.yaml` with `experiment=<name>` and overrides (no Hydra run folder);
    a copy, so a caller may change it."""
    return _composed(name, overrides).copy()


@cache
def _composed(name: str, overrides: tuple[str, ...]) -> DictConfig:
    """Composed once per bench process: the contests ask for the same configs again (half a
    second each)."""
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    import metalearn.resolvers  # noqa: F401  (${metalearn.data_dir:...} in paths)
    from metalearn.conf import compose_train

    return compose_train([f"experiment={name}", "registry=off", *overrides])
