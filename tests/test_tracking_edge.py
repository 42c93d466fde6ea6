"""Tracking at the edge: training reaches the run registry and the API only through the configs
(the registry's Hydra callback and Lightning pair), so `registry=off` needs none of it."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "src" / "metalearn"
EDGES = ("metalearn.registry", "metalearn.api", "metalearn.sweep")  # records, HTTP, sweeps
# Training, and what it is built from (the list); with every module they import.
TRAINING = ["train.py", "run.py", "resolvers.py", "objectives.py", "data", "models", "algorithms"]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_file(name: str) -> Path | None:
    """The file of a metalearn module (None for a name that is not one: a class, a function)."""
    base = PACKAGE.parent.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_names(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, dotted name) of every import in the file of module, at module level or inside a
    function, and of every string that could name a module (importlib.import_module, a
    `_target_`)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1]) if node.level else ""
            module_ = ".".join(filter(None, [base, node.module]))
            names = [module_, *(f"{module_}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            names = [node.value]
        else:
            continue
        found += [(node.lineno, n) for n in names]
    return found


def edge_imports(path: Path, module: str) -> list[str]:
    """`file:line name` for each import of an edge package in the file of module."""
    return [f"{path.name}:{line} {n}" for line, n in imported_names(path, module)
            if any(n == e or n.startswith(e + ".") for e in EDGES)]


def training_modules() -> list[Path]:
    """The files of TRAINING and of every metalearn module they import, transitively."""
    todo = [p for t in TRAINING for p in ([PACKAGE / t] if t.endswith(".py") else (PACKAGE / t).rglob("*.py"))]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for _, name in imported_names(path, module_name(path)):
            target = module_file(name) if name.startswith("metalearn.") else None
            if target is not None and not name.startswith(EDGES):
                todo.append(target)
    return sorted(seen)


def test_training_imports_nothing_from_the_registry_the_api_or_the_sweeps() -> None:
    modules = training_modules()
    assert {PACKAGE / "train.py", PACKAGE / "instantiate.py", PACKAGE / "algorithms" / "reptile.py"} <= set(modules)
    assert [hit for p in modules for hit in edge_imports(p, module_name(p))] == []


def test_the_check_finds_every_kind_of_import(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"  # read as if it were metalearn/algorithms/probe.py
    probe.write_text(textwrap.dedent("""
        import metalearn.api.app
        from ..registry import store
        def f():
            from metalearn.sweep.past import finished
            return __import__("importlib").import_module("metalearn.registry.record")
        """))
    hits = edge_imports(probe, "metalearn.algorithms.probe")
    assert [h.split(" ")[1] for h in hits] == [
        "metalearn.api.app", "metalearn.registry", "metalearn.registry.store",
        "metalearn.sweep.past", "metalearn.sweep.past.finished", "metalearn.registry.record"]


OFF_RUN = textwrap.dedent(
    """
    import runpy, sys
    sys.argv = [sys.argv[1], *sys.argv[2:]]
    runpy.run_path(sys.argv[0], run_name="__main__")
    print("LOADED", sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy"
                           or m.startswith(("metalearn.registry.", "metalearn.api", "metalearn.sweep"))))
    """
)


def test_registry_off_runs_with_no_database_and_without_sqlalchemy(tmp_path: Path) -> None:
    project = tmp_path / "project"  # PROJECT_ROOT: where the default registry would go
    project.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "METALEARN_REGISTRY_URL"}
    proc = subprocess.run(
        [sys.executable, "-c", OFF_RUN, str(ROOT / "run.py"), "experiment=maml_sinusoid", "debug=fast",
         "registry=off", f"paths.log_dir={tmp_path / 'logs'}", "callbacks.rich_progress_bar=null"],
        cwd=tmp_path, env={**env, "PROJECT_ROOT": str(project)}, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (loaded,) = [line for line in proc.stdout.splitlines() if line.startswith("LOADED")]
    # run.py holds the registry's launch-failure hook, a light module that loads nothing else;
    # the sweeper plugin Hydra imports at each run loads its search-space parser only
    assert loaded == "LOADED ['metalearn.registry.launch_failure', 'metalearn.sweep', 'metalearn.sweep.space']"
    assert list(tmp_path.glob("logs/maml_sinusoid/runs/*/checkpoints/last.ckpt"))  # it did run
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".db", ".db-wal", ".sqlite")]
