"""Training scores: logged every `trainer.log_every_n_steps` steps as the mean since the last
write, equal to the mean of the values written when every step is logged, also across a
resume from a checkpoint taken mid-window; the per-step seed of dropout."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from metalearn.algorithms.train_scores import ScoreWindow
from metalearn.train import train
from tests.conftest import compose_config


def train_scalars(out_dir: Path) -> dict[str, dict[int, float]]:
    """{name: {step: value}} of the train/ values the CSV logger wrote."""
    (path,) = out_dir.glob("csv/*/*/metrics.csv")
    out: dict[str, dict[int, float]] = {}
    for row in csv.DictReader(path.open()):
        for k, v in row.items():
            if k.startswith("train/") and v != "":
                out.setdefault(k, {})[int(row["step"])] = float(v)
    return out


def run(tmp_path: Path, experiment: str, name: str, *overrides: str) -> dict[str, dict[int, float]]:
    cfg = compose_config([f"experiment={experiment}", "debug=fast", f"paths.log_dir={tmp_path}/logs",
                          "callbacks.rich_progress_bar=null", "registry=off", "logger=csv",
                          "test=false", *overrides], tmp_path / name)
    train(cfg)
    return train_scalars(tmp_path / name)


@pytest.mark.parametrize("experiment", ["maml_sinusoid", "finetune_sinusoid", "protonet_omniglot"])
def test_every_nth_step_logs_the_mean_of_the_steps_since_the_last_write(tmp_path, experiment):
    every = run(tmp_path, experiment, "every", "trainer.max_steps=6", "trainer.log_every_n_steps=1")
    third = run(tmp_path, experiment, "third", "trainer.max_steps=6", "trainer.log_every_n_steps=3")
    assert every and set(every) == set(third)
    for name, values in every.items():
        assert sorted(values) == list(range(6))
        assert sorted(third[name]) == [2, 5], name  # Lightning writes steps 3 and 6
        for end in (2, 5):
            window = [values[s] for s in range(end - 2, end + 1)]
            assert third[name][end] == pytest.approx(sum(window) / 3, rel=1e-6, abs=1e-9), name
        assert third[name][2] != pytest.approx(values[2], rel=1e-6)  # a mean, not the last value


def test_a_resumed_run_writes_the_means_an_uninterrupted_one_does(tmp_path):
    """Checkpoints come at each validation (2 steps here); a window of 3 spans one."""
    args = ("data.steps_per_epoch=2", "trainer.log_every_n_steps=3")
    full = run(tmp_path, "maml_sinusoid", "full", "trainer.max_steps=6", *args)
    run(tmp_path, "maml_sinusoid", "first", "trainer.max_steps=2", *args)
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["metalearn_train_scores"]  # steps 0 and 1
    resumed = run(tmp_path, "maml_sinusoid", "resumed", "trainer.max_steps=6", f"ckpt_path={ckpt}",
                  *args)
    assert set(full) == set(resumed) and full
    for name, values in full.items():
        assert resumed[name] == pytest.approx(values, rel=1e-6), name


def test_the_window_weights_each_step_by_its_tasks_and_keeps_a_single_step_as_it_is():
    window = ScoreWindow()
    window.add("loss", 0.1 + 0.2, 3)
    assert window.take() == {"loss": (0.1 + 0.2, 3)}  # not (0.3 * 3) / 3, which rounds
    window.add("loss", 1.0, 1)
    window.add("loss", torch.tensor(3.0, requires_grad=True) * 1, 3)
    window.add("acc", 0.5, 1)
    assert window.last["loss"].requires_grad is False  # a score holds no graph
    state = window.state_dict()
    restored = ScoreWindow()
    restored.load_state_dict(state)
    for w in (window, restored):
        out = w.take()
        assert float(out["loss"][0]) == pytest.approx((1.0 + 9.0) / 4) and out["loss"][1] == 4
        assert out["acc"] == (0.5, 1)
        assert w.take() == {}


def test_step_rng_draws_from_the_step_seed_and_leaves_the_global_stream_alone():
    from torch import nn

    from metalearn.algorithms.maml import MAML
    from metalearn.models.split import SplitModel
    from metalearn.objectives import Classification

    module = MAML(model=SplitModel(top=nn.Linear(3, 2)), objective=Classification(),
                  optimizer=torch.optim.SGD, inner_lr=0.1, inner_steps=1, seed=5)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    with module.step_rng():
        drawn = torch.rand(3)
    seed = 5 * 1_000_003 + 0  # global_step 0 outside a Trainer
    assert torch.equal(drawn, torch.rand(3, generator=torch.Generator().manual_seed(seed)))
    assert torch.equal(torch.rand(3), expected_next)
