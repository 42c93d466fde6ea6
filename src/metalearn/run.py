"""The Hydra main behind `python run.py ...` and `metalearn train ...`: the same configs, the
same command line (overrides, -m, --cfg, -cd/--config-dir ...), the same recorded attempt."""
from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import hydra
from omegaconf import DictConfig

from metalearn.project import find_project_root
from metalearn.registry.record import recorded_launch
from metalearn.threads import prefer_passive_wait
from metalearn.train_help import help_text, wants_help


@hydra.main(config_path="pkg://metalearn.conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Train and meta-test as cfg says; the value a sweeper optimizes (`optimized_metric`)."""
    from metalearn.train import train  # after PROJECT_ROOT is set: the configs read it

    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric") or "", None)


def launch(argv: Sequence[str], prog: str | None = None) -> None:
    """Run `main` on argv (Hydra's command line) as one recorded launch.

    The project root (logs/, data/ and the registry below it) is `$PROJECT_ROOT` if set (run.py
    sets its clone), else the clone around the current folder, else the current folder. A
    command line that fails before training (an unknown experiment, a config that does not
    compose) is recorded as a failed attempt and ends with status 1. Idle OpenMP threads sleep
    (`OMP_WAIT_POLICY=PASSIVE` unless set): torch loads after this, in `main`. `--help` prints
    metalearn.train_help's text and runs nothing.
    """
    if wants_help(argv):
        sys.stdout.write(help_text(argv))
        return
    prefer_passive_wait()
    root = os.environ.setdefault("PROJECT_ROOT", str(find_project_root()))
    sys.argv = [prog or sys.argv[0], *argv]  # Hydra reads its arguments from sys.argv
    with recorded_launch(list(argv), root):
        main()


if __name__ == "__main__":  # `python -m metalearn.run ...`: how `metalearn serve` starts attempts
    launch(sys.argv[1:], prog="metalearn train")
