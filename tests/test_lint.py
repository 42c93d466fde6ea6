"""The pre-commit hook runs ruff with the project's settings, offline."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_pre_commit_hook_runs_ruff_offline(tmp_path: Path) -> None:
    pytest.importorskip("pre_commit", reason="pre-commit is not installed (the dev extra)")
    bindir = Path(sys.executable).parent
    if not (bindir / "ruff").exists() and shutil.which("ruff") is None:
        pytest.skip("ruff is not installed (the dev extra)")
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    for name in (".pre-commit-config.yaml", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / ".pre-commit-home"),
               PATH=os.pathsep.join([str(bindir), os.environ.get("PATH", "")]),
               GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@t.invalid",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@t.invalid")

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=120, check=False)

    module = tmp_path / "module.py"
    module.write_text("import os\n\n\ndef f(x):\n    return x\n")  # F401: os unused
    assert run("git", "init", "-q").returncode == 0
    run("git", "add", "-A")
    bad = run(sys.executable, "-m", "pre_commit", "run", "--all-files")
    assert bad.returncode != 0 and "F401" in bad.stdout, bad.stdout + bad.stderr

    module.write_text("def f(x):\n    return x\n")
    run("git", "add", "-A")
    good = run(sys.executable, "-m", "pre_commit", "run", "--all-files")
    assert good.returncode == 0, good.stdout + good.stderr


def test_the_tree_is_ruff_clean() -> None:
    """ruff with the project's settings finds nothing in the checkout."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (the dev extra)")
    out = subprocess.run([str(ruff), "check", "--no-cache", str(ROOT)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stdout[-3000:]
