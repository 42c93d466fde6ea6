"""A checkpoint as `ckpt=` names it: an attempt id in the run registry, or a checkpoint file.

Either way it comes with its run's config (what rebuilds the module: model, objective,
algorithm, and the data's tokenizer or image settings) and, where the registry knows the run,
its command line and meta-test results. An attempt id reads the config the registry stored; a
file reads the config Hydra saved beside it (`<run>/.hydra/config.yaml`, resolved here). A
Lightning checkpoint holds only the algorithm's own keys, not the model's.
"""
from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import metalearn.resolvers  # noqa: F401  (the configs' ${metalearn.data_dir:...})
from metalearn.checkpoint_file import check_checkpoint
from metalearn.inference.errors import CheckpointError
from metalearn.registry.errors import NotFound

SECTIONS = ("task_name", "seed", "tags", "data", "model", "objective", "algorithm")


class AttemptReader(Protocol):
    """What is read from the run registry (a `metalearn.registry.Store`)."""

    def get_attempt(self, attempt_id: int) -> dict[str, Any]: ...

    def list_attempts(self, **filters: Any) -> list[dict[str, Any]]: ...

    def test_results(self, attempt_id: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class RunCheckpoint:
    """A checkpoint file and what is known of the run that wrote it.

    config: the run's config sections (SECTIONS), resolved, as plain data. attempt_id,
    command, test_results: from the registry where it knows the run (test_results: one row per
    meta-test group and metric, with the 95% interval), else None / [].
    """

    reference: str
    path: Path
    config: dict[str, Any]
    attempt_id: int | None = None
    command: str | None = None
    test_results: list[dict[str, Any]] = field(default_factory=list)

    @property
    def data_target(self) -> str:
        """The data source's class name (`HFTextEpisodes`, `ReviewEpisodes`, ...)."""
        return str(self.config["data"].get("_target_", "")).rsplit(".", 1)[-1]


def find_checkpoint(reference: str, store: AttemptReader | None = None) -> RunCheckpoint:
    """The checkpoint `reference` names: digits are an attempt id (read from `store`), anything
    else a checkpoint file; errors name `ckpt=` and what is wrong."""
    reference = str(reference).strip()
    if reference.isdigit():
        return _from_attempt(int(reference), store)
    return _from_file(reference, store)


def _from_attempt(attempt_id: int, store: AttemptReader | None) -> RunCheckpoint:
    where = f"ckpt={attempt_id}"
    if store is None:
        raise CheckpointError(f"{where} is an attempt id, but there is no run registry to read it "
                              f"from (pass --url or give the checkpoint file's path)")
    try:
        attempt = store.get_attempt(attempt_id)
    except NotFound as exc:
        raise CheckpointError(f"{where}: {exc} in the run registry") from exc
    path = attempt.get("ckpt_path")
    if not path:
        raise CheckpointError(f"{where}: attempt {attempt_id} ({attempt.get('status')}) recorded no "
                              f"checkpoint")
    _check_file(path, where)
    config = attempt.get("config") or {}
    missing = [k for k in ("data", "model", "objective", "algorithm") if k not in config]
    if missing:
        raise CheckpointError(f"{where}: attempt {attempt_id}'s stored config lacks "
                              f"{', '.join(missing)}")
    command = attempt.get("command")
    return RunCheckpoint(reference=str(attempt_id), path=Path(path), attempt_id=attempt_id,
                         config={k: config[k] for k in SECTIONS if k in config},
                         command=_command_line(command) if command else None,
                         test_results=store.test_results(attempt_id))


def _from_file(reference: str, store: AttemptReader | None) -> RunCheckpoint:
    where = f"ckpt={reference}"
    path = Path(reference).expanduser()
    _check_file(str(path), where)
    run_dir = path.resolve().parent
    if run_dir.name == "checkpoints":  # <run>/checkpoints/step000004.ckpt
        run_dir = run_dir.parent
    config_file = run_dir / ".hydra" / "config.yaml"
    if not config_file.is_file():
        raise CheckpointError(
            f"{where}: no run config beside it ({config_file}, which every `metalearn train` run "
            f"writes): keep the checkpoint in its run folder, or give its attempt id (ckpt=ID, "
            f"from `metalearn runs list`)")
    config = resolved_sections(config_file, run_dir)
    attempt = _attempt_of(path.resolve(), store)
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    command = None
    if attempt is not None and attempt.get("command"):
        command = _command_line(attempt["command"])
    elif overrides_file.is_file():
        overrides = OmegaConf.to_container(OmegaConf.load(overrides_file)) or []
        command = _command_line(["metalearn", "train", *[str(o) for o in overrides]])
    return RunCheckpoint(reference=reference, path=path, config=config,
                         attempt_id=None if attempt is None else attempt["id"], command=command,
                         test_results=[] if attempt is None or store is None
                         else store.test_results(attempt["id"]))


def resolved_sections(config_file: Path, run_dir: Path) -> dict[str, Any]:
    """The SECTIONS of a run's saved Hydra config, with interpolations resolved (its output
    folder is `run_dir`; outside Hydra `${hydra:...}` has no value)."""
    try:
        cfg = OmegaConf.load(config_file)
        if "paths" in cfg:
            cfg.paths.output_dir = str(run_dir)
        return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k])
                else cfg[k] for k in SECTIONS if k in cfg}
    except OmegaConfBaseException as exc:
        raise CheckpointError(f"ckpt: the run config {config_file} does not resolve: "
                              f"{str(exc).splitlines()[0]}") from exc


def _check_file(path: str, where: str) -> None:
    try:
        check_checkpoint(path)
    except (FileNotFoundError, ValueError) as exc:
        raise CheckpointError(f"{where}: {str(exc).removeprefix(f'ckpt_path {path}: ')}") from exc


def _attempt_of(path: Path, store: AttemptReader | None) -> dict[str, Any] | None:
    """The newest attempt that recorded this checkpoint file, if a registry is given."""
    if store is None:
        return None
    for attempt in store.list_attempts(debug=None):
        if attempt.get("ckpt_path") and Path(attempt["ckpt_path"]) == path:
            return attempt
    return None


def _command_line(argv: list[str]) -> str:
    """argv as one shell line; `python run.py ...` and `metalearn train ...` (whose argv[0] is
    run.py's path, or `metalearn train` itself) both read as `metalearn train ...`."""
    args = [str(a) for a in argv]
    if args and Path(args[0]).name in ("run.py", "metalearn train"):
        args = ["metalearn", "train", *args[1:]]
    return shlex.join(args)
