"""The project root: the clone around a folder (run.py beside conf/), else the folder itself."""
from __future__ import annotations

from pathlib import Path

from metalearn.project import find_project_root, is_project


def test_the_root_is_the_nearest_clone_at_or_above(tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    (clone / "conf").mkdir(parents=True)
    (clone / "run.py").write_text("")
    deep = clone / "experiments" / "notes"
    deep.mkdir(parents=True)
    assert is_project(clone) and not is_project(deep)
    assert find_project_root(deep) == find_project_root(clone) == clone.resolve()


def test_outside_a_clone_the_root_is_the_folder_itself(tmp_path: Path) -> None:
    (tmp_path / "run.py").write_text("")  # run.py without conf/ is not a clone
    assert find_project_root(tmp_path / ".") == tmp_path.resolve()
    assert not is_project(tmp_path)
