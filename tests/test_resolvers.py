"""The config resolvers: how every logger names a run (`${metalearn.log_version:}`), and the
folders of METALEARN_CONFIG_DIR on Hydra's search path (`${metalearn.config_searchpath:}`)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import read_write

from metalearn.resolvers import MAX_OVERRIDES_CHARS, config_searchpath, name_runs, version_name
from tests.conftest import compose_config

BASE = ["experiment=reptile_amazon", "debug=fast", "callbacks.rich_progress_bar=null"]


def _versions(cfg) -> tuple[str, str]:  # noqa: ANN001
    return cfg.logger.tensorboard.version, cfg.logger.csv.version


def test_with_the_registry_off_a_run_is_named_by_its_output_folder(tmp_path: Path) -> None:
    cfg = compose_config([*BASE, "logger=many_loggers", "registry=off", "seed=1", "data.shots=[2,4]",
                          f"paths.log_dir={tmp_path}"], tmp_path / "runs" / "2024-05-01_12-00-00")
    assert _versions(cfg) == ("2024-05-01_12-00-00_data.shots=[2,4]_debug=fast_seed=1",) * 2


def test_a_sweep_job_is_named_by_its_sweep_and_job_folders(tmp_path: Path) -> None:
    cfg = compose_config([*BASE, "registry=off", "seed=2", f"paths.log_dir={tmp_path}"],
                         tmp_path / "multiruns" / "2024-05-01_12-00-00" / "3")
    with read_write(cfg.hydra):
        cfg.hydra.mode = "MULTIRUN"  # as Hydra's sweep launcher sets it
    HydraConfig.instance().set_config(cfg)
    assert cfg.logger.tensorboard.version == "2024-05-01_12-00-00-3_debug=fast_seed=2"


def test_a_tracker_names_the_runs_of_its_job_until_it_ends(tmp_path: Path) -> None:
    """The registry's Hydra callback calls name_runs(f"attempt-{id}") for its job."""
    cfg = compose_config([*BASE, "algorithm.inner_lr=0.1", f"paths.log_dir={tmp_path}",
                          "ckpt_path=/a/b.ckpt", "registry.url=sqlite:///x.db"], tmp_path / "out")
    name_runs("attempt-1")
    try:
        assert cfg.logger.tensorboard.version == "attempt-1_algorithm.inner_lr=0.1_debug=fast"
    finally:
        name_runs(None)
    assert cfg.logger.tensorboard.version == "out_algorithm.inner_lr=0.1_debug=fast"


def test_without_hydra_or_an_attempt_the_loggers_number_their_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose_config([*BASE, f"paths.log_dir={tmp_path}"], tmp_path / "out")
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)
    assert cfg.logger.tensorboard.version is None


def test_a_version_is_one_folder_name_of_bounded_length() -> None:
    assert version_name("attempt-3", "data.path=/a/b\\c") == "attempt-3_data.path=-a-b-c"
    assert version_name("attempt-3", "") == "attempt-3"
    long = version_name("attempt-3", "x=" + "y" * 400)
    assert long.startswith("attempt-3_x=yyy") and long.endswith("...")
    assert len(long) == len("attempt-3_") + MAX_OVERRIDES_CHARS


def test_the_config_folder_variable_adds_folders_to_the_search_path(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mine, more = tmp_path / "mine", tmp_path / "more"
    (mine / "experiment").mkdir(parents=True)
    (more / "data").mkdir(parents=True)
    (mine / "experiment" / "tiny.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /data: tiny_waves\n\ntask_name: tiny\n")
    (more / "data" / "tiny_waves.yaml").write_text(
        "defaults:\n  - sinusoid\n  - _self_\n\nshots: 3\n")  # a shipped config, extended
    monkeypatch.setenv("METALEARN_CONFIG_DIR", f"{mine}{os.pathsep}{more}")
    assert config_searchpath() == [f"file://{mine}", f"file://{more}"]
    cfg = compose_config(["experiment=tiny", "objective=regression", "model=sinusoid_mlp"],
                         tmp_path / "out")
    assert cfg.task_name == "tiny" and cfg.data.shots == 3
    assert cfg.data._target_.endswith("SinusoidEpisodes")


def test_a_missing_config_folder_is_an_error_naming_the_variable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALEARN_CONFIG_DIR", str(tmp_path / "typo"))
    with pytest.raises(ValueError, match="METALEARN_CONFIG_DIR names .*typo.* not a folder"):
        config_searchpath()
    monkeypatch.setenv("METALEARN_CONFIG_DIR", "")
    assert config_searchpath() == []
