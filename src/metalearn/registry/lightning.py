"""The Lightning side of the registry: a logger for metrics, a callback for the lifecycle."""
from __future__ import annotations

import atexit
import logging
from argparse import Namespace
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.loggers import TensorBoardLogger
from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only

from metalearn.registry import schema
from metalearn.registry.record import git_commit
from metalearn.registry.session import AttemptSession, active
from metalearn.registry.store import Store

log = logging.getLogger(__name__)


class RegistryLogger(Logger):
    """Sends every logged metric to the attempt being recorded.

    Under run.py the attempt is the one the registry's Hydra callback opened for the job; used
    on its own (say in a notebook) the logger opens an attempt of its own in the registry at
    url on first use.
    """

    def __init__(
        self,
        url: str | None = None,
        name: str = "registry",
        standalone: bool = True,
        **writer_options: Any,
    ) -> None:
        super().__init__()
        self._url, self._name, self._writer_options = url, name, writer_options
        self._standalone, self._warned = standalone, False
        self._own: AttemptSession | None = None
        self._joined = False
        self._join: tuple[int, str, dict[str, Any]] | None = None  # set when pickled (ddp_spawn)
        self._hparams: dict[str, Any] = {}

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> int | None:
        session = active() or self._own
        return session.attempt_id if session is not None else None

    @property
    def experiment(self) -> AttemptSession | None:
        """The attempt session this logger writes to (None off rank zero)."""
        return self.session()

    @rank_zero_only
    def session(self) -> AttemptSession | None:
        """The active attempt, or one this logger opens for itself when standalone."""
        session = active()
        if session is not None:
            return session
        if self._own is None and self._join is not None:  # in a process ddp_spawn started
            attempt_id, url, options = self._join
            self._own, self._joined = AttemptSession.join(Store(url), attempt_id, options), True
        if self._own is not None:
            return self._own
        if not self._standalone:
            if not self._warned:
                log.warning("RegistryLogger(standalone=False) has no active attempt: not recording")
                self._warned = True
            return None
        if self._own is None:
            store = Store(self._url)
            fields = {"name": self._name, "config": _jsonable(self._hparams), "git_commit": git_commit(None)}
            self._own = AttemptSession.open(store, fields, writer_options=self._writer_options)
            atexit.register(self._own.finish, schema.INTERRUPTED, "process exited before the run ended")
        return self._own

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Queue the metrics (written in batches by the session's writer thread)."""
        session = self.session()
        if session is not None:
            session.add_metrics(metrics, 0 if step is None else step)

    @rank_zero_only
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        """Keep hyperparameters as the config of a self-opened attempt (run.py stores the full config)."""
        self._hparams = dict(vars(params) if isinstance(params, Namespace) else params)
        if self._own is not None:
            self._own.update(config=_jsonable(self._hparams))

    def save(self) -> None:
        """Nothing: Lightning calls this after every logged step, and the writer thread
        already writes in batches (flushes happen at fit/test end and on errors)."""

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Write what is queued; a self-opened attempt also gets its final status."""
        if self._own is not None and self._joined:
            self._own.detach()
            self._own.store.close()
            self._own = None
        elif self._own is not None:
            final = schema.COMPLETED if status in ("success", "finished") else schema.FAILED
            self._own.finish(final)
            atexit.unregister(self._own.finish)
            self._own.store.close()
            self._own = None
        else:
            session = active()
            if session is not None and not session.closed:
                session.flush()

    def __getstate__(self) -> dict[str, Any]:
        """Pickle (for ddp_spawn) without the live session, but with what it takes to rejoin it."""
        state = self.__dict__.copy()
        current = active() or self._own
        if current is not None and not current.closed:
            state["_join"] = (current.attempt_id, current.store.url, current.writer_options)
        state["_own"], state["_joined"] = None, False
        return state


class RegistryCallback(Callback):
    """Marks running / testing, stores the checkpoint path and the per-domain test results."""

    def __init__(self, save_last: bool = True) -> None:
        self.save_last = save_last

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Record the run name the other loggers file the attempt under (TensorBoard's run)."""
        session = _session(trainer)
        name = log_name(trainer)
        if session is not None and name is not None:
            session.update(log_name=name)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        session = _session(trainer)
        if session is not None:
            session.set_status(schema.RUNNING)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Record the best (else last) checkpoint; save one if nothing else did and save_last."""
        path = _checkpoint_path(trainer)
        if path is None and self.save_last:
            path = str(Path(trainer.default_root_dir) / "checkpoints" / "last.ckpt")
            trainer.save_checkpoint(path)  # every rank must call it
        session = _session(trainer)
        if session is not None and path is not None:
            session.update(ckpt_path=str(Path(path).resolve()))
            session.flush()

    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        session = _session(trainer)
        if session is not None:
            session.set_status(schema.TESTING)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Store pl_module.test_results rows (group, metric, value, ci95, episodes, shots, queries)."""
        session = _session(trainer)
        results = getattr(pl_module, "test_results", None)
        if session is None:
            return
        if results:
            session.put_test_results(results)
        session.flush()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Write the metrics logged before the failure, and keep the exception for the attempt's
        owner (the Hydra callback, record_attempt), which sets the status."""
        session = _session(trainer)
        if session is not None and not session.closed:
            session.stopped_by = exception
            session.flush()


def _session(trainer: pl.Trainer) -> AttemptSession | None:
    """The session of this trainer's RegistryLogger, else the active one; None off rank zero."""
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, RegistryLogger):
            return logger.session()
    session = active()
    if session is None:
        log.warning("RegistryCallback has no RegistryLogger and no active attempt; recording nothing")
    return session


def log_name(trainer: pl.Trainer) -> str | None:
    """`<name>/<version>` of the trainer's TensorBoard logger, else of its first other logger
    that names runs: the run name TensorBoard shows and the folder under each logger's root."""
    named = [lg for lg in trainer.loggers if not isinstance(lg, RegistryLogger) and lg.name]
    named.sort(key=lambda lg: not isinstance(lg, TensorBoardLogger))
    for logger in named:
        version = logger.version
        if version is not None:
            return f"{logger.name}/{version if isinstance(version, str) else f'version_{version}'}"
    return None


def _checkpoint_path(trainer: pl.Trainer) -> str | None:
    """The best model path of the checkpoint callback, else its last path."""
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    return getattr(callback, "best_model_path", "") or getattr(callback, "last_model_path", "") or None


def _jsonable(value: Any) -> Any:
    """Hyperparameters as JSON-safe data (other objects as their repr)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
