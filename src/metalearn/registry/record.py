"""Record an attempt (`metalearn train`, `python run.py`): describe it from its Hydra config,
open it as a session and end it with the job's outcome."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from metalearn.registry import schema
from metalearn.registry.engine import default_url
from metalearn.registry.environment import describe_environment
from metalearn.registry.session import AttemptSession, activate
from metalearn.registry.store import Store
from metalearn.resolvers import name_runs

log = logging.getLogger(__name__)

ATTEMPT_ENV = "METALEARN_ATTEMPT_ID"  # set by the API server: record into this queued row
WRITER_KEYS = ("flush_s", "heartbeat_s", "lease_s", "batch_size")


def open_attempt(cfg: DictConfig) -> AttemptSession | None:
    """Open the attempt cfg (a job's config) describes and make it the one this process's
    Lightning logger and callback write to; None with `registry=off` and off rank zero.

    A queued attempt named by $METALEARN_ATTEMPT_ID (the API server's) is taken over instead,
    by the first job only: later jobs of a sweep get attempts of their own.
    """
    rcfg = cfg.get("registry")
    if rcfg is None or not _is_rank_zero():  # registry=off sets it to null
        return None
    store = Store(rcfg.get("url") or default_url(OmegaConf.select(cfg, "paths.root_dir")))
    adopt = os.environ.pop(ATTEMPT_ENV, None)
    options = {k: rcfg[k] for k in WRITER_KEYS if rcfg.get(k) is not None}
    try:
        session = AttemptSession.open(
            store, describe(cfg), adopt_id=int(adopt) if adopt else None, writer_options=options
        )
    except BaseException:
        store.close()
        raise
    activate(session)
    name_runs(f"attempt-{session.attempt_id}")
    try:
        # Again now that the attempt has an id: the loggers' version (${metalearn.log_version:})
        # names the attempt, so the stored config shows the run name they use.
        session.update(config=_redact_config(_container(cfg)))
    except BaseException as exc:
        close_attempt(session, exc)
        raise
    return session


def close_attempt(session: AttemptSession, error: BaseException | str | None = None, *,
                  status: str | None = None) -> None:
    """Write what is queued and end the attempt: with status if given, else as `outcome` reads
    error; error (an exception's traceback, or a message) is kept with it."""
    if status is None:
        status, error = outcome(error)
    try:
        session.finish(status, error)
    finally:
        activate(None)
        name_runs(None)
        session.store.close()


def outcome(error: BaseException | None) -> tuple[str, BaseException | None]:
    """The final status an attempt ends with, and the exception it keeps: `completed` without
    one (or on a clean `sys.exit`), `interrupted` on Ctrl-C, SIGTERM or another exit, `failed`
    on any other exception."""
    if error is None:
        return schema.COMPLETED, None
    if isinstance(error, SystemExit):  # includes Lightning's SIGTERMException and its Ctrl-C exit
        # SIGTERMException carries no exit code, so it is told apart by its name (this
        # module does not import Lightning, which comes as pytorch_lightning or lightning).
        if error.code in (0, None) and type(error).__name__ != "SIGTERMException":
            return schema.COMPLETED, None
        return schema.INTERRUPTED, error
    if isinstance(error, KeyboardInterrupt):
        return schema.INTERRUPTED, error
    return schema.FAILED, error


@contextmanager
def record_attempt(cfg: DictConfig) -> Iterator[AttemptSession | None]:
    """Record the block as one attempt (for code that runs outside a Hydra job: a notebook, a
    script); failures are stored with their traceback. A Hydra job gets the same from
    `hydra_callback.RecordAttempt`."""
    session = open_attempt(cfg)
    if session is None:
        yield None
        return
    try:
        yield session
    except BaseException as exc:
        close_attempt(session, exc)
        raise
    close_attempt(session)


def kind_of(cfg: DictConfig) -> str:
    """`train` (meta-training, with what follows it), else `test` (a meta-test), else
    `validate` (a checkpoint's meta-validation alone)."""
    if cfg.get("train", True) or not (cfg.get("test", False) or cfg.get("validate", False)):
        return "train"
    return "test" if cfg.get("test", False) else "validate"


def describe(cfg: DictConfig) -> dict[str, Any]:
    """The attempt's row fields: names, resolved config, overrides, host, commit, paths."""
    hydra = _hydra_config()
    choices = dict(hydra.runtime.choices) if hydra is not None else {}
    name = str(cfg.get("task_name") or "train")
    if hydra is not None and str(hydra.mode) == "RunMode.MULTIRUN":
        name = f"{name}/{hydra.job.num}"
    training = bool(cfg.get("train", True))
    root = OmegaConf.select(cfg, "paths.root_dir", default=None)
    output_dir = hydra.runtime.output_dir if hydra is not None else None
    overrides = list(hydra.overrides.task) if hydra is not None else []
    return {
        "name": name,
        "kind": kind_of(cfg),
        "experiment": choices.get("experiment"),
        "algorithm": trained_by(cfg, choices),
        "config": _redact_config(_container(cfg)),
        "overrides": [redact_arg(a) for a in overrides],
        "command": [redact_arg(a) for a in sys.argv],
        "tags": _plain(cfg.get("tags")),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "git_commit": git_commit(root),
        "output_dir": output_dir or OmegaConf.select(cfg, "paths.output_dir", default=None),
        "ckpt_path": None if training else cfg.get("ckpt_path"),
        "study": OmegaConf.select(cfg, "study.name", default=None),
        "trial": OmegaConf.select(cfg, "study.trial", default=None),
        "environment": describe_environment(),
    }


def trained_by(cfg: DictConfig, choices: dict[str, Any] | None = None) -> str:
    """The algorithm whose weights the attempt ends with: the configured one when it trains or
    meta-tests a checkpoint (trained by that algorithm), else `none` (`pretrained_*`: the
    model as built, with the algorithm only adapting it at meta-test time)."""
    if not cfg.get("train", True) and cfg.get("ckpt_path") is None:
        return schema.NO_TRAINING
    name = (choices or {}).get("algorithm") or _target_name(cfg, "algorithm")
    return str(name) if name else schema.NO_TRAINING


def git_commit(root: str | os.PathLike[str] | None) -> str | None:
    """The commit of the code that runs ('-dirty' if changed): the git checkout metalearn is
    imported from (an editable install, which may be another clone than the one the run was
    started in), else the checkout at root; None outside a git checkout."""
    return _described(Path(__file__).resolve().parents[1]) or _described(Path(root or Path.cwd()))


def _described(folder: Path) -> str | None:
    """The commit checked out around folder ('-dirty' if changed), or None where git or a
    checkout is missing."""
    try:
        done = subprocess.run(["git", "-C", str(folder), "describe", "--always", "--dirty",
                               "--abbrev=40"], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.debug("no git commit recorded: %s", exc)
        return None
    if done.returncode != 0:
        log.debug("no git commit recorded from %s: %s", folder, done.stderr.strip())
        return None
    return done.stdout.strip() or None


def redact_url(url: str) -> str:
    """url with its password replaced by ***, so no credential is stored in the registry."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def redact_arg(arg: str) -> str:
    """A command-line argument with the password of a registry.url override hidden."""
    key, sep, value = arg.partition("=")
    return f"{key}{sep}{redact_url(value)}" if key.lstrip("+~").endswith("registry.url") and sep else arg


def _redact_config(config: Any) -> Any:
    """The stored config with the registry URL's password hidden."""
    registry = config.get("registry") if isinstance(config, dict) else None
    if isinstance(registry, dict) and isinstance(registry.get("url"), str):
        registry["url"] = redact_url(registry["url"])
    return config


def _container(cfg: DictConfig) -> Any:
    """The config as plain data, resolved where every interpolation resolves."""
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        log.warning("storing the config unresolved: %s", exc)
        return OmegaConf.to_container(cfg, resolve=False)


def _plain(value: Any) -> Any:
    """OmegaConf containers as plain lists and dicts."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _target_name(cfg: DictConfig, key: str) -> str | None:
    """The class name of cfg[key]._target_, lower-cased, when there is one."""
    target = OmegaConf.select(cfg, f"{key}._target_", default=None)
    return str(target).rsplit(".", 1)[-1].lower() if target else None


def _hydra_config() -> Any:
    """Hydra's runtime config when running under @hydra.main, else None."""
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_rank_zero() -> bool:
    """False in the extra processes Lightning launches for DDP (they re-run the script)."""
    return all(int(os.environ.get(k, "0")) == 0 for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))
