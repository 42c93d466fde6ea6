"""Record an attempt (`metalearn train`, `python run.py`): describe it from its Hydra config
and wrap it in a session."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from metalearn.registry import schema
from metalearn.registry.engine import URL_ENV, default_url, log_dir_url
from metalearn.registry.environment import describe_environment
from metalearn.registry.errors import RegistryError
from metalearn.registry.session import AttemptSession, activate
from metalearn.registry.store import Store, utcnow

log = logging.getLogger(__name__)

ATTEMPT_ENV = "METALEARN_ATTEMPT_ID"  # set by the API server: record into this queued row
WRITER_KEYS = ("flush_s", "heartbeat_s", "lease_s", "batch_size")
_entered = False  # whether record_attempt ran in this process (then it records any failure)


@contextmanager
def recorded_launch(argv: Sequence[str], root: str | os.PathLike[str] | None = None) -> Iterator[None]:
    """Around the Hydra main (metalearn.run): a failure before `train()` (an unknown
    experiment or key, a config that does not compose) becomes a `failed` attempt with its
    message, as every later failure does, and a one-line error instead of a traceback."""
    os.environ.setdefault("HYDRA_FULL_ERROR", "1")  # let composition errors reach us
    try:
        yield
    except Exception as exc:
        if _entered:
            raise
        message = _describe(exc)
        try:
            _record_launch_failure(list(argv), message, root)
        except (RegistryError, SQLAlchemyError, OSError) as err:
            log.warning("the failure could not be recorded: %s", err)
        log.error("%s", message)
        raise SystemExit(1) from exc


def _describe(exc: BaseException) -> str:
    """`<type>: <message>` of the first exception in the cause chain that has a message (Hydra's
    `--cfg` path wraps a missing config in a ConfigCompositionException with none)."""
    seen: BaseException | None = exc
    while seen is not None and not str(seen).strip():
        seen = seen.__cause__ or seen.__context__
    found = seen if seen is not None else exc
    return f"{type(found).__name__}: {found}"


def _launch_registry_url(values: dict[str, str], root: str | os.PathLike[str] | None) -> str:
    """The registry a command line names, as conf/registry/default.yaml resolves it:
    registry.url, else $METALEARN_REGISTRY_URL, else paths.log_dir (paths.root_dir/logs) on
    the command line, else the project root's logs/."""
    if values.get("registry.url"):
        return values["registry.url"]
    log_dir = values.get("paths.log_dir") or (
        f"{values['paths.root_dir']}/logs" if values.get("paths.root_dir") else None)
    if os.environ.get(URL_ENV) or not log_dir:
        return default_url(root)
    return log_dir_url(Path(log_dir).expanduser())


def _record_launch_failure(argv: list[str], message: str, root: str | os.PathLike[str] | None) -> None:
    """A failed attempt for a command line that never reached train()."""
    overrides = [a for a in argv if not a.startswith("-")]
    values = dict(a.split("=", 1) for a in overrides if "=" in a)
    if values.get("registry") == "off":
        return
    store = Store(_launch_registry_url(values, root))
    try:
        adopt = os.environ.pop(ATTEMPT_ENV, None)
        if adopt:
            store.set_status(int(adopt), schema.FAILED, error=message,
                             only_status=[*schema.ACTIVE, schema.QUEUED])
            return
        experiment = values.get("experiment")
        store.create_attempt(
            status=schema.FAILED, kind="train", name=experiment or "train", experiment=experiment,
            overrides=[_redact_arg(a) for a in overrides],
            command=[_redact_arg(a) for a in sys.argv], host=socket.gethostname(),
            pid=os.getpid(), git_commit=git_commit(root), error=message, ended_at=utcnow())
    finally:
        store.close()


@contextmanager
def record_attempt(cfg: DictConfig) -> Iterator[AttemptSession | None]:
    """Record the attempt run inside this block; failures are stored with their traceback."""
    global _entered
    _entered = True
    rcfg = cfg.get("registry")
    if rcfg is None or not _is_rank_zero():  # registry=off sets it to null
        yield None
        return
    store = Store(rcfg.get("url") or default_url(OmegaConf.select(cfg, "paths.root_dir")))
    adopt = os.environ.pop(ATTEMPT_ENV, None)  # one job adopts it, later sweep jobs do not
    options = {k: rcfg[k] for k in WRITER_KEYS if rcfg.get(k) is not None}
    session = AttemptSession.open(
        store, describe(cfg), adopt_id=int(adopt) if adopt else None, writer_options=options
    )
    activate(session)
    try:
        # Again now that the attempt has an id: the loggers' version (${metalearn.log_version:})
        # names the attempt, so the stored config shows the run name they use.
        session.update(config=_redact_config(_container(cfg)))
        yield session
    except SystemExit as exc:  # includes Lightning's SIGTERMException and its Ctrl-C exit
        # SIGTERMException carries no exit code, so it is told apart by its name (this
        # module does not import Lightning, which comes as pytorch_lightning or lightning).
        clean = exc.code in (0, None) and type(exc).__name__ != "SIGTERMException"
        session.finish(schema.COMPLETED if clean else schema.INTERRUPTED, None if clean else exc)
        raise
    except KeyboardInterrupt as exc:
        session.finish(schema.INTERRUPTED, exc)
        raise
    except BaseException as exc:
        session.finish(schema.FAILED, exc)
        raise
    else:
        session.finish(schema.COMPLETED)
    finally:
        activate(None)
        store.close()


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
        "overrides": [_redact_arg(a) for a in overrides],
        "command": [_redact_arg(a) for a in sys.argv],
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


def _redact_arg(arg: str) -> str:
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
