"""The registry's Hydra callback: each job one attempt, opened before the task and ended with its
outcome, through Hydra's own run_job (tests.conftest.run_job)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hydra._internal.callbacks import Callbacks
from hydra.core.utils import JobStatus
from hydra.core.utils import run_job as hydra_run_job
from hydra.types import HydraContext
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from metalearn.registry import RecordAttempt, Store, schema
from metalearn.registry.session import active
from tests.conftest import ROOT, compose_config, run_job


def _cfg(tmp_path: Path, *overrides: str) -> DictConfig:
    """maml_sinusoid's config, its registry (paths.log_dir/registry.db) and output in tmp_path."""
    return compose_config(["experiment=maml_sinusoid", "debug=fast", f"paths.log_dir={tmp_path}",
                           "seed=3", *overrides], tmp_path / "out")


def test_a_job_is_one_attempt_its_loggers_are_named_by(tmp_path: Path) -> None:
    seen = {}

    def task(cfg: DictConfig) -> float:
        seen["session"], seen["version"] = active(), cfg.logger.tensorboard.version
        return 0.5

    job = run_job(_cfg(tmp_path), task)
    assert job.status == JobStatus.COMPLETED and job.return_value == 0.5
    (row,) = Store(f"sqlite:///{tmp_path}/registry.db").list_attempts(with_config=True)
    assert seen["session"].attempt_id == row["id"] == 1
    assert seen["version"] == "attempt-1_debug=fast_seed=3"
    assert (row["status"], row["experiment"], row["algorithm"]) == ("completed", "maml_sinusoid", "maml")
    assert "hydra" not in row["config"]  # the task's config, as the task got it
    assert row["config"]["logger"]["tensorboard"]["version"] == "attempt-1_debug=fast_seed=3"
    assert active() is None  # and the loggers of a later job are no longer named by it:
    assert _cfg(tmp_path).logger.tensorboard.version == "out_debug=fast_seed=3"


def test_a_failing_job_is_failed_with_its_traceback(tmp_path: Path) -> None:
    def task(cfg: DictConfig) -> None:
        raise FileNotFoundError("no such data file: /nonexistent/data.json")

    job = run_job(_cfg(tmp_path), task)
    assert job.status == JobStatus.FAILED
    (row,) = Store(f"sqlite:///{tmp_path}/registry.db").list_attempts(with_config=True)
    assert row["status"] == schema.FAILED
    assert "Traceback" in row["error"] and "FileNotFoundError: no such data file" in row["error"]
    assert active() is None


def test_registry_off_has_no_callback_and_records_nothing(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, "registry=off")
    assert "registry" not in (cfg.hydra.callbacks or {})
    job = run_job(cfg, lambda c: active())
    assert job.return_value is None
    assert not list(tmp_path.rglob("*.db"))


def test_only_rank_zero_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOCAL_RANK", "1")  # a DDP worker Lightning started: it re-runs the job
    assert run_job(_cfg(tmp_path), lambda c: active()).return_value is None
    assert not (tmp_path / "registry.db").exists()


def test_a_registry_that_cannot_record_ends_the_process_before_the_task(tmp_path: Path) -> None:
    """Hydra would turn a callback's exception into a warning and run the task unrecorded."""
    ran = []
    with pytest.raises(SystemExit, match="the run registry cannot record this run: unsupported"):
        run_job(_cfg(tmp_path, "registry.url=mysql://host/db"), ran.append)
    assert ran == []


def test_an_interrupt_that_leaves_the_job_ends_it_interrupted(tmp_path: Path) -> None:
    """Hydra's run_job lets SystemExit and KeyboardInterrupt pass without on_job_end: the attempt
    ends at process exit, with what stopped the trainer (the Lightning callback keeps it)."""
    callback = RecordAttempt()
    cfg = _cfg(tmp_path)

    def task(c: DictConfig) -> None:
        active().stopped_by = SIGTERMException()  # as RegistryCallback.on_exception does
        raise SIGTERMException()

    callbacks = Callbacks()  # as the conftest's run_job, with this instance to call at exit
    callbacks.callbacks = [callback]
    with pytest.raises(SIGTERMException):
        hydra_run_job(task_function=task, config=cfg, job_dir_key="hydra.runtime.output_dir",
                      job_subdir_key=None, configure_logging=False,
                      hydra_context=HydraContext(config_loader=None, callbacks=callbacks))
    store = Store(f"sqlite:///{tmp_path}/registry.db")
    assert store.list_attempts()[0]["status"] == schema.RUNNING  # until the process exits:
    callback._ended_inside()  # what atexit calls
    (row,) = store.list_attempts(with_config=True)
    assert row["status"] == schema.INTERRUPTED and "SIGTERMException" in row["error"]
    assert active() is None


CTRL_C = textwrap.dedent(
    """
    import sys
    from tests.conftest import compose_config, run_job

    def task(cfg):
        raise KeyboardInterrupt  # outside the trainer: nothing saw it but the interpreter

    run_job(compose_config(["experiment=maml_sinusoid", "debug=fast", "paths.log_dir=" + sys.argv[1]],
                           __import__("pathlib").Path(sys.argv[1]) / "out"), task)
    """
)


def test_ctrl_c_outside_the_trainer_ends_the_attempt_interrupted_at_exit(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CTRL_C, str(tmp_path)], cwd=ROOT, text=True,
                          capture_output=True, timeout=300, env={**os.environ, "PROJECT_ROOT": str(ROOT)})
    assert proc.returncode != 0 and "KeyboardInterrupt" in proc.stderr
    (row,) = Store(f"sqlite:///{tmp_path}/registry.db").list_attempts(with_config=True)
    assert row["status"] == schema.INTERRUPTED
    assert "the process ended inside the run" in row["error"]
