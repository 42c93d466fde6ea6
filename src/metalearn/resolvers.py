"""OmegaConf resolvers the configs use (registered once, on import)."""
from __future__ import annotations

import os
import re
from pathlib import Path

from omegaconf import OmegaConf

MAX_OVERRIDES_CHARS = 150  # of a run name's overrides part (a folder name holds 255 bytes)
CONFIG_DIR_ENV = "METALEARN_CONFIG_DIR"
_run_head: str | None = None  # what name_runs set: the head of every logger's version


def data_dir(root: str) -> str:
    """`$METALEARN_DATA`, else `../shared/data` beside the clone, else `<root>/data`."""
    if os.environ.get("METALEARN_DATA"):
        return os.environ["METALEARN_DATA"]
    shared = Path(root).resolve().parent / "shared" / "data"
    return str(shared if shared.exists() else Path(root).resolve() / "data")


def config_searchpath() -> list[str]:
    """`$METALEARN_CONFIG_DIR` (folders separated by `os.pathsep`) as Hydra search path entries.

    Configs there are found beside the shipped ones, as with `--config-dir`; a folder that
    does not exist is an error naming the variable (Hydra would only warn and go on).
    """
    entries = []
    for folder in filter(None, os.environ.get(CONFIG_DIR_ENV, "").split(os.pathsep)):
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise ValueError(f"{CONFIG_DIR_ENV} names {folder!r}, which is not a folder ({path})")
        entries.append(f"file://{path}")
    return entries


def name_runs(head: str | None) -> None:
    """File the runs of the job now running under head in every logger (`${metalearn.log_version:}`),
    until called with None: a tracker's name for the job, such as the run registry's
    `attempt-12`, which its Hydra callback sets when it opens the attempt."""
    global _run_head
    _run_head = head


def log_version() -> str | None:
    """The version every logger files this run under (TensorBoard shows `<name>/<version>`).

    The head `name_runs` set (the registry's `attempt-<id>`), else (registry=off) the Hydra
    output folder's name, with its sweep folder's for a sweep job; then `_` and the job's own
    overrides as `hydra.job.override_dirname` lists them (the config hydra/default.yaml leaves out
    paths and the like), so the runs of a sweep tell apart at a glance:
    `attempt-12_seed=1_data.shots=8`. None (each logger numbers its runs itself) with neither a
    head nor Hydra.
    """
    from hydra.core.hydra_config import HydraConfig

    hydra = HydraConfig.get() if HydraConfig.initialized() else None
    if _run_head is not None:
        head = _run_head
    elif hydra is not None and OmegaConf.select(hydra, "runtime.output_dir", default=None):
        out = Path(hydra.runtime.output_dir)
        head = f"{out.parent.name}-{out.name}" if str(hydra.mode) == "RunMode.MULTIRUN" else out.name
    else:
        return None
    overrides = OmegaConf.select(hydra, "job.override_dirname", default=None) if hydra else None
    return version_name(head, overrides or "")


def version_name(head: str, overrides: str) -> str:
    """`<head>_<overrides>` as one folder name: separators replaced, long overrides cut."""
    overrides = re.sub(r"[/\\]", "-", overrides)
    if len(overrides) > MAX_OVERRIDES_CHARS:
        overrides = overrides[: MAX_OVERRIDES_CHARS - 3] + "..."
    return f"{head}_{overrides}" if overrides else head


def register() -> None:
    """Make `${metalearn.data_dir:<root>}`, `${metalearn.log_version:}` and
    `${metalearn.config_searchpath:}` available to configs."""
    if not OmegaConf.has_resolver("metalearn.data_dir"):
        OmegaConf.register_new_resolver("metalearn.data_dir", data_dir)
    if not OmegaConf.has_resolver("metalearn.log_version"):
        OmegaConf.register_new_resolver("metalearn.log_version", log_version)
    if not OmegaConf.has_resolver("metalearn.config_searchpath"):
        OmegaConf.register_new_resolver("metalearn.config_searchpath", config_searchpath)


register()
