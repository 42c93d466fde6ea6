"""What an attempt's row says about the run: the algorithm that trained, the loggers' run name."""
from __future__ import annotations

from pathlib import Path

import pytest

from metalearn.registry.record import describe
from tests.conftest import compose_config


@pytest.mark.parametrize("overrides, algorithm", [
    (["experiment=reptile_amazon"], "reptile_adam_amazon"),  # the algorithm config chosen
    (["experiment=finetune_amazon"], "finetune"),  # the baseline trains: it is named
    (["experiment=pretrained_amazon"], "none"),  # train=false, nothing trained
    (["experiment=pretrained_arsc"], "none"),
    (["experiment=pretrained_omniglot"], "none"),  # builds on finetune_omniglot, trains nothing
    (["experiment=reptile_amazon", "train=false"], "none"),
    # meta-testing a checkpoint: the weights were trained by the configured algorithm
    (["experiment=reptile_amazon", "train=false", "ckpt_path=/x/last.ckpt"], "reptile_adam_amazon"),
    (["experiment=maml_omniglot", "train=false", "ckpt_path=/x/last.ckpt"], "maml"),
])
def test_the_algorithm_column_says_what_trained(tmp_path: Path, overrides: list[str], algorithm: str) -> None:
    fields = describe(compose_config([*overrides, f"paths.log_dir={tmp_path}"], tmp_path / "out"))
    assert fields["algorithm"] == algorithm


@pytest.mark.parametrize("overrides, kind", [
    ([], "train"),
    (["train=false"], "test"),
    (["train=false", "test=false", "validate=true"], "validate"),
    (["train=false", "validate=true"], "test"),  # meta-validated and meta-tested
])
def test_the_kind_column_says_which_stages_ran(tmp_path: Path, overrides: list[str], kind: str) -> None:
    cfg = compose_config(["experiment=reptile_amazon", *overrides, f"paths.log_dir={tmp_path}"],
                         tmp_path / "out")
    assert describe(cfg)["kind"] == kind


def test_the_row_says_what_it_ran_on_and_which_trial_it_was(tmp_path: Path) -> None:
    import torch

    cfg = compose_config(["experiment=maml_sinusoid", "study.name=s", "study.trial=3",
                          f"paths.log_dir={tmp_path}"], tmp_path / "out")
    fields = describe(cfg)
    assert (fields["study"], fields["trial"]) == ("s", 3)
    env = fields["environment"]
    assert env["libraries"]["torch"] == torch.__version__
    assert env["cpu"] and env["cpu_count"] >= 1 and isinstance(env["accelerators"], list)
    assert describe(compose_config(["experiment=maml_sinusoid", f"paths.log_dir={tmp_path}"],
                                   tmp_path / "o2"))["study"] is None


def test_the_commit_is_the_running_code_s_not_the_folder_s(tmp_path: Path) -> None:
    """A run started from another clone (its own git checkout) while metalearn is imported from
    this one records this checkout's commit: the code that ran."""
    import subprocess

    import metalearn
    from metalearn.registry.record import git_commit
    from tests.conftest import ROOT

    if ROOT not in Path(metalearn.__file__).resolve().parents:
        pytest.skip("metalearn is not imported from this checkout")
    other = tmp_path / "other-clone"
    other.mkdir()
    for args in (["init", "-q"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                                  "--allow-empty", "-m", "x"]):
        subprocess.run(["git", "-C", str(other), *args], check=True)
    expected = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty",
                               "--abbrev=40"], capture_output=True, text=True, check=True).stdout.strip()
    assert git_commit(other) == expected
