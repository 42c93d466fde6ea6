"""The project root: the clone of metalearn whose logs/, data/ and registry a run uses."""
from __future__ import annotations

import os
from pathlib import Path


def find_project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The project root: the nearest clone of metalearn at or above start (its logs/ and data/
    are used from anywhere inside it), else start itself (an installed metalearn works in the
    current folder)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if is_project(folder):
            return folder
    return here


def is_project(folder: Path) -> bool:
    """Whether folder is a clone of metalearn (run.py and the configs, conf/)."""
    return (folder / "run.py").is_file() and (folder / "conf").is_dir()
