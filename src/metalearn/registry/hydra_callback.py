"""The Hydra side of the registry: each job (a run, or each job of a `-m` sweep) is one attempt,
opened before the job's task runs and ended with its outcome. conf/registry/default.yaml
names it in `hydra.callbacks`; the Lightning pair (registry.lightning) writes the attempt's
metrics, checkpoint and test results in between."""
from __future__ import annotations

import atexit
import copy
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write
from sqlalchemy.exc import SQLAlchemyError

from metalearn.registry import schema
from metalearn.registry.errors import RegistryError
from metalearn.registry.record import close_attempt, open_attempt
from metalearn.registry.session import AttemptSession

ENDED_INSIDE = ("the process ended inside the run (Ctrl-C, SIGTERM or an exit) with no "
                "exception the trainer saw")


class RecordAttempt(Callback):
    """Opens an attempt at each job's start and ends it at the job's end (rank zero only;
    nothing with `registry=off`, which leaves this callback out)."""

    def __init__(self) -> None:
        self._session: AttemptSession | None = None

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Open the attempt the job's config describes.

        A registry that cannot record ends the process: Hydra turns a callback's exception
        into a warning and would run the job unrecorded (an API-queued attempt never started).
        """
        try:
            self._session = open_attempt(job_config(config))
        except (RegistryError, SQLAlchemyError, OSError) as exc:
            raise SystemExit(f"the run registry cannot record this run: {exc}") from exc
        if self._session is not None:
            atexit.register(self._ended_inside)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        """End the attempt: `completed`, or `failed` with the job's exception and traceback."""
        session, self._session = self._session, None
        if session is None:
            return
        atexit.unregister(self._ended_inside)
        # A failed job's exception: JobReturn.return_value would raise it (and print a line).
        failed = job_return.status == JobStatus.FAILED
        close_attempt(session, job_return._return_value if failed else None)

    def _ended_inside(self) -> None:
        """At process exit, the attempt of a job that never ended: Hydra's run_job lets
        KeyboardInterrupt and SystemExit (Lightning's Ctrl-C exit and SIGTERM) pass without
        on_job_end. `interrupted`, with what stopped the trainer when it saw it."""
        session, self._session = self._session, None
        if session is not None and not session.closed:
            close_attempt(session, session.stopped_by or ENDED_INSIDE, status=schema.INTERRUPTED)


def job_config(config: DictConfig) -> DictConfig:
    """The job's config without Hydra's own node: what the task function is handed (and what
    an attempt stores)."""
    task = copy.deepcopy(config)
    with read_write(task), open_dict(task):
        task.pop("hydra", None)
    return task
