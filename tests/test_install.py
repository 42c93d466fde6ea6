"""What an install from the index ships: the licence, the typing marker, the extras, and a
clear message where an optional part is missing."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from metalearn.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _setup_cfg() -> configparser.ConfigParser:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return cfg


def test_serve_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    loaded = [m for m in sys.modules
              if m == "fastapi" or m.startswith(("fastapi.", "metalearn.api"))]
    for name in loaded:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "fastapi", None)  # `import fastapi` now fails as if absent
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert "serve" in err and "metalearn-lightning[serve]" in err and "fastapi" in err


def test_server_packages_are_an_extra_not_core() -> None:
    cfg = _setup_cfg()
    core = cfg["options"]["install_requires"]
    extras = cfg["options.extras_require"]
    for package in ("fastapi", "uvicorn", "fastapi-offline", "pydantic"):
        assert package not in core
        assert package in extras["serve"]
    assert {"serve", "postgres", "sweep", "loggers", "notebook", "dev", "test"} <= set(extras)


def test_the_wheel_ships_licence_typing_marker_and_checksums(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", minversion="70.1",  # bdist_wheel without `wheel`
                        reason="building a wheel offline needs setuptools 70.1 or newer here")
    tree = tmp_path / "tree"  # a copy, so the build leaves nothing in the checkout
    top = {".git", ".venv", "logs", ".cache", "build", "tests", "data", "outputs", "multirun"}
    shutil.copytree(ROOT, tree, ignore=lambda folder, names: [
        n for n in names if (Path(folder) == ROOT and n in top) or n == "__pycache__"
        or n.endswith(".egg-info")])
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path / "dist"), str(tree)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel, = (tmp_path / "dist").glob("metalearn_lightning-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "metalearn/py.typed" in names
    assert {"metalearn/data/checksums/amazon.sha256",
            "metalearn/data/checksums/omniglot.sha256"} <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE")
               for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Name: metalearn-lightning" in text and "Provides-Extra: serve" in text
    assert "MIT License" in (ROOT / "LICENSE").read_text()


def test_every_requirement_declares_a_minimum() -> None:
    """scripts/check_minimums.sh pins each `>=X` to `==X`: a requirement without one escapes it."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "pin_minimums.py"),
                           str(ROOT / "setup.cfg"), "dev", "sweep"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    pins = proc.stdout.split()
    assert "pytorch-lightning==2.6" in pins and "transformers==5.2" in pins
    assert all("==" in pin for pin in pins)
