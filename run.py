"""Entry point: `python run.py experiment=reptile_amazon [key=value ...]`."""
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))

from metalearn.registry.record import recorded_launch  # noqa: E402
from metalearn.train import train  # noqa: E402  (after PROJECT_ROOT is set)


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric") or "", None)


if __name__ == "__main__":
    with recorded_launch(sys.argv[1:], os.environ["PROJECT_ROOT"]):  # failures before train()
        main()
