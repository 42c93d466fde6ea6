"""The Hydra main behind `python run.py ...` and `metalearn train ...`: the same configs, the
same command line (overrides, -m, --cfg, -cd/--config-dir ...), the same recorded attempt."""
from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence

import hydra
from omegaconf import DictConfig

from metalearn.project import find_project_root
from metalearn.threads import prefer_passive_wait
from metalearn.train_help import help_text, wants_help

log = logging.getLogger(__name__)

# Told what failed before a job started: (Hydra's command line, the one-line message, the root).
LaunchFailureHook = Callable[[Sequence[str], str, str], None]
_job_started = False  # whether Hydra got as far as a job: a later failure is the job's own


@hydra.main(config_path="pkg://metalearn.conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Train and meta-test as cfg says; the value a sweeper optimizes (`optimized_metric`)."""
    global _job_started
    _job_started = True
    from metalearn.train import train  # after PROJECT_ROOT is set: the configs read it

    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric") or "", None)


def launch(argv: Sequence[str], prog: str | None = None, *,
           on_launch_failure: LaunchFailureHook | None = None) -> None:
    """Run `main` on argv (Hydra's command line).

    The project root (logs/, data/ and the registry below it) is `$PROJECT_ROOT` if set (run.py
    sets its clone), else the clone around the current folder, else the current folder. A
    command line that fails before a job starts (an unknown experiment, a config that does not
    compose) ends with its message on one line and status 1, and is handed to
    on_launch_failure (the entry points pass the run registry's, which records it as a failed
    attempt). Idle OpenMP threads sleep (`OMP_WAIT_POLICY=PASSIVE` unless set): torch loads
    after this, in `main`. `--help` prints metalearn.train_help's text and runs nothing.
    """
    if wants_help(argv):
        sys.stdout.write(help_text(argv))
        return
    prefer_passive_wait()
    root = os.environ.setdefault("PROJECT_ROOT", str(find_project_root()))
    sys.argv = [prog or sys.argv[0], *argv]  # Hydra reads its arguments from sys.argv
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let composition errors reach us
    try:
        main()
    except Exception as exc:
        if _job_started:
            raise
        message = describe_error(exc)
        if on_launch_failure is not None:
            on_launch_failure(list(argv), message, root)
        log.error("%s", message)
        raise SystemExit(1) from exc


def describe_error(exc: BaseException) -> str:
    """`<type>: <message>` of the first exception in the cause chain that has a message (Hydra's
    `--cfg` path wraps a missing config in a ConfigCompositionException with none)."""
    seen: BaseException | None = exc
    while seen is not None and not str(seen).strip():
        seen = seen.__cause__ or seen.__context__
    found = seen if seen is not None else exc
    return f"{type(found).__name__}: {found}"


if __name__ == "__main__":  # `python -m metalearn.run ...`: how `metalearn serve` starts attempts
    launch(sys.argv[1:], prog="metalearn train")
