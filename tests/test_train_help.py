"""`metalearn train --help`: metalearn's own short help, fast, saying how to see a config."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from metalearn.train_help import help_text
from tests.conftest import ROOT

IMPORTS = "import sys; from metalearn.cli import main; main(sys.argv[1:]); assert 'torch' not in sys.modules"


def run_cli(tmp_path, *argv: str) -> str:
    """`metalearn <argv>` in tmp_path as its project root; its stdout (must exit 0, no torch loaded)."""
    proc = subprocess.run([sys.executable, "-c", IMPORTS, *argv], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PROJECT_ROOT=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_lists_experiments_and_groups_and_says_how_to_see_a_config(tmp_path, flag):
    out = run_cli(tmp_path, "train", flag)
    assert out.startswith("metalearn train: ")
    assert "powered by Hydra" not in out and "== Config ==" not in out  # Hydra's app help
    assert "  reptile_amazon " in out and "  maml_sinusoid " in out
    assert "  trainer: cpu, ddp, ddp_sim, ddp_sim_fork, default, gpu, mps" in out
    assert "metalearn train experiment=reptile_amazon --cfg job" in out
    assert "--hydra-help" in out
    assert not (tmp_path / "logs").exists()  # nothing ran, nothing was recorded


def test_help_after_overrides_shows_that_commands_config_command(tmp_path):
    out = run_cli(tmp_path, "train", "experiment=maml_sinusoid", "seed=3", "--help")
    assert "  metalearn train experiment=maml_sinusoid seed=3 --cfg job\n" in out


def test_the_advertised_cfg_job_prints_the_experiments_config(tmp_path):
    out = run_cli(tmp_path, "train", "experiment=maml_sinusoid", "--cfg", "job")
    assert "task_name: maml_sinusoid" in out and "threads: auto" in out


def test_run_py_help_is_the_same(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env=dict(os.environ, COLUMNS="90"))
    assert proc.returncode == 0 and proc.stdout == help_text(["--help"], width=90)


def test_a_users_own_experiments_are_listed(tmp_path, monkeypatch):
    mine, env_dir = tmp_path / "mine", tmp_path / "env"
    (mine / "experiment").mkdir(parents=True)
    (mine / "experiment" / "my_exp.yaml").write_text("# @package _global_\n# My own sentiment run.\nseed: 1\n")
    (env_dir / "experiment").mkdir(parents=True)
    (env_dir / "experiment" / "from_env.yaml").write_text("# From the variable.\n")
    (env_dir / "experiment" / "maml_sinusoid.yaml").write_text("# Never shown: the shipped one runs.\n")
    monkeypatch.setenv("METALEARN_CONFIG_DIR", str(env_dir))
    text = help_text(["--config-dir", str(mine), "--help"], width=100)
    assert "  my_exp                 My own sentiment run.\n" in text
    assert "  from_env               From the variable.\n" in text
    assert "  maml_sinusoid          MAML on sinusoid regression" in text and "Never shown" not in text


def test_long_summaries_are_cut_to_the_width():
    text = help_text(["--help"], width=80)
    experiments = text.split("experiments (")[1].split("\n\n")[0].splitlines()[1:]
    assert len(experiments) > 20 and all(len(line) <= 80 for line in experiments)
    assert any(line.endswith("...") for line in experiments)
