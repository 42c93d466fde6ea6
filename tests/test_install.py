"""What an install from the index ships: the licence, the typing marker, the extras, every
config, a `metalearn train` that works from any folder with a user's own configs, and a clear
message where an optional part is missing."""
from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from metalearn.cli import main
from metalearn.conf import CONFIG_DIR
from metalearn.registry import Store

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
    for package in ("fastapi", "uvicorn", "fastapi-offline", "pydantic", "jinja2"):
        assert package not in core
        assert package in extras["serve"]
    assert {"serve", "postgres", "sweep", "loggers", "notebook", "dev", "test"} <= set(extras)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of this checkout (so the build leaves nothing in it), offline."""
    pytest.importorskip("setuptools", minversion="70.1",  # bdist_wheel without `wheel`
                        reason="building a wheel offline needs setuptools 70.1 or newer here")
    tmp_path = tmp_path_factory.mktemp("wheel")
    tree = tmp_path / "tree"
    top = {".git", ".venv", "logs", ".cache", "build", "tests", "data", "outputs", "multirun"}
    shutil.copytree(ROOT, tree, ignore=lambda folder, names: [
        n for n in names if (Path(folder) == ROOT and n in top) or n == "__pycache__"
        or n.endswith(".egg-info")])
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                           "--no-build-isolation", "-w", str(tmp_path / "dist"), str(tree)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    built, = (tmp_path / "dist").glob("metalearn_lightning-*.whl")
    return built


def test_the_wheel_ships_licence_typing_marker_and_checksums(wheel: Path) -> None:
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


def test_the_wheel_ships_every_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = {f"metalearn/conf/{p.relative_to(CONFIG_DIR).as_posix()}"
               for p in CONFIG_DIR.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert len(configs) > 80 and "metalearn/conf/experiment/reptile_amazon.yaml" in configs
    assert configs - names == set()
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "metalearn = metalearn.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_wheel_ships_every_page_template_script_and_style(wheel: Path) -> None:
    """The web pages need no build step and fetch nothing: every file they serve is in the wheel."""
    web = ROOT / "src" / "metalearn" / "web"
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = {f"metalearn/web/{p.relative_to(web).as_posix()}"
              for folder in ("templates", "static") for p in (web / folder).rglob("*") if p.is_file()}
    assert {"metalearn/web/static/live.js", "metalearn/web/static/style.css",
            "metalearn/web/templates/runs.html"} <= assets
    assert assets - names == set()


MY_EXPERIMENT = """\
# @package _global_
# A user's experiment in their own folder: first-order MAML on the sinusoid.
defaults:
  - override /data: sinusoid
  - override /objective: regression
  - override /model: sinusoid_mlp
  - override /algorithm: fomaml

task_name: my_exp
tags: [mine]
data:
  meta_batch_size: 3
"""


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed (not editable) into a folder of its own; returns that folder."""
    target = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                           "--no-build-isolation", "--target", str(target), str(wheel)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (target / "bin" / "metalearn").is_file()
    return target


def _metalearn(installed: Path, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The installed `metalearn` command, run in cwd with only the installed package importable
    (not this checkout's src/, not the shared environment's editable install)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in {"PROJECT_ROOT", "METALEARN_REGISTRY_URL", "METALEARN_CONFIG_DIR",
                          "METALEARN_DATA", "METALEARN_ATTEMPT_ID"}}
    clean.update(PYTHONPATH=str(installed), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", **env)
    return subprocess.run([sys.executable, str(installed / "bin" / "metalearn"), *args], cwd=cwd,
                          env=clean, capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A folder outside the clone holding a user's config folder, myconf/experiment/my_exp.yaml."""
    assert ROOT not in tmp_path.resolve().parents
    (tmp_path / "myconf" / "experiment").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment" / "my_exp.yaml").write_text(MY_EXPERIMENT)
    return tmp_path


def test_installed_metalearn_trains_a_users_experiment_from_any_folder(
        installed: Path, workdir: Path) -> None:
    proc = _metalearn(installed, workdir, "train", "-cd", "myconf", "experiment=my_exp",
                      "debug=fast", "callbacks.rich_progress_bar=null")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "attempt 1 completed" in proc.stdout + proc.stderr
    store = Store(f"sqlite:///{workdir / 'logs' / 'registry.db'}")  # the folder it ran in
    (attempt,) = store.list_attempts()
    assert (attempt["experiment"], attempt["algorithm"], attempt["status"]) == (
        "my_exp", "fomaml", "completed")
    assert Path(attempt["output_dir"]).resolve().is_relative_to((workdir / "logs").resolve())
    assert {r["metric"] for r in store.test_results(attempt["id"])} == {"mse"}
    config = store.get_attempt(attempt["id"])["config"]
    assert config["paths"]["root_dir"] == str(workdir.resolve())
    assert config["paths"]["data_dir"] == str(workdir.resolve() / "data")
    store.close()
    listed = _metalearn(installed, workdir, "runs", "list", "--debug", "--json")  # debug=fast
    assert [r["experiment"] for r in json.loads(listed.stdout)] == ["my_exp"]


def test_installed_metalearn_reads_the_config_folder_variable(installed: Path,
                                                              workdir: Path) -> None:
    shown = _metalearn(installed, workdir, "train", "experiment=my_exp", "--cfg", "job",
                       METALEARN_CONFIG_DIR="myconf")
    assert shown.returncode == 0, shown.stderr[-3000:]
    cfg = yaml.safe_load(shown.stdout)
    assert cfg["task_name"] == "my_exp" and cfg["data"]["meta_batch_size"] == 3
    assert cfg["algorithm"]["_target_"].endswith("MAML")
    without = _metalearn(installed, workdir, "train", "experiment=my_exp", "--cfg", "job")
    assert without.returncode == 1 and "my_exp" in without.stderr  # not found, and recorded:
    (failed,) = Store(f"sqlite:///{workdir / 'logs' / 'registry.db'}").list_attempts()
    assert failed["status"] == "failed" and "my_exp" in failed["error"]
    missing = _metalearn(installed, workdir, "train", "experiment=my_exp", "--cfg", "job",
                         METALEARN_CONFIG_DIR="nowhere")
    assert missing.returncode == 1 and "METALEARN_CONFIG_DIR names 'nowhere'" in missing.stderr


def test_every_requirement_declares_a_minimum() -> None:
    """scripts/check_minimums.sh pins each `>=X` to `==X`: a requirement without one escapes it."""
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "pin_minimums.py"),
                           str(ROOT / "setup.cfg"), "dev", "sweep"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    pins = proc.stdout.split()
    assert "pytorch-lightning==2.6" in pins and "transformers==5.2" in pins
    assert all("==" in pin for pin in pins)
