"""Training scores: logged every `trainer.log_every_n_steps` steps as the mean since the last
write, equal to the mean of the values written when every step is logged, also across a
resume from a checkpoint taken mid-window; the scores before adapting, computed on the written
steps only, without changing training; the per-step seed of dropout."""
from __future__ import annotations

import csv
from functools import partial
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from torch import nn
from torch.utils.data import DataLoader

from metalearn.algorithms.maml import MAML
from metalearn.algorithms.reptile import Reptile
from metalearn.algorithms.train_scores import ScoreWindow
from metalearn.models.split import SplitModel
from metalearn.objectives import Classification
from metalearn.train import train
from tests.conftest import compose_config, toy_episode


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
    assert any(name.endswith("_pre") for name in every) == experiment.startswith("maml")
    for name, values in every.items():
        assert sorted(values) == list(range(6))
        assert sorted(third[name]) == [2, 5], name  # Lightning writes steps 3 and 6
        for end in (2, 5):
            if name.endswith("_pre"):  # scored before adapting on the written steps only
                assert third[name][end] == pytest.approx(values[end], rel=1e-6, abs=1e-9), name
                continue
            window = [values[s] for s in range(end - 2, end + 1)]
            assert third[name][end] == pytest.approx(sum(window) / 3, rel=1e-6, abs=1e-9), name
        if not name.endswith("_pre"):
            assert third[name][2] != pytest.approx(values[2], rel=1e-6)  # a mean, not the last value


class StepForwards(Callback):
    """Per training step: how many forwards the model's top ran, and the scores handed to the
    window (`train_window.last`)."""

    def __init__(self, top: nn.Module) -> None:
        self.forwards, self.scores, self.count = [], [], 0
        top.register_forward_hook(self.seen)

    def seen(self, *_: object) -> None:
        self.count += 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.count = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.forwards.append(self.count)
        self.scores.append(set(pl_module.train_window.last))


def fit(learner, steps: int, every: int, callbacks=()) -> dict[str, torch.Tensor]:
    """`steps` meta-steps of 2 tasks, train/ scores written every `every` steps; the weights."""
    batches = [[toy_episode(10 * s + t) for t in range(2)] for s in range(steps)]
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                         limit_val_batches=0, log_every_n_steps=every, callbacks=list(callbacks))
    trainer.fit(learner, train_dataloaders=DataLoader(batches, batch_size=None))
    return {n: p.detach().clone() for n, p in learner.outer_parameters().items()}


def gradient_learner(cls, top: nn.Module, **kw):
    torch.manual_seed(0)
    return cls(model=SplitModel(top=top), objective=Classification(),
               optimizer=partial(torch.optim.SGD, lr=0.1), inner_lr=0.3, inner_steps=1, **kw)


@pytest.mark.parametrize("vmap_tasks", [False, True], ids=["loop", "vmap"])
@pytest.mark.parametrize("cls", [MAML, Reptile])
def test_the_query_is_scored_before_adapting_only_on_the_steps_written(cls, vmap_tasks):
    """Its forward serves only the `_pre` scores, which Lightning writes every
    log_every_n_steps steps (here the 2nd and 4th): one forward less per task on the others
    (one batched forward under vmap_tasks)."""
    learner = gradient_learner(cls, nn.Linear(3, 2), vmap_tasks=vmap_tasks)
    probe = StepForwards(learner.model.top)
    fit(learner, 4, every=2, callbacks=[probe])
    extra = 1 if vmap_tasks else 2
    skipped, scored = probe.forwards[0], probe.forwards[1]
    assert probe.forwards == [skipped, scored, skipped, scored] and scored == skipped + extra
    pre = {"query_loss_pre", "query_acc_pre"}
    assert [pre <= s for s in probe.scores] == [False, True, False, True]
    assert not any(pre & s for s in probe.scores[::2])


@pytest.mark.parametrize("cls", [MAML, Reptile])
def test_whether_the_query_is_scored_before_adapting_never_changes_training(cls):
    """With dropout, a forward that drew from the step's random stream would move every later
    mask: training must not depend on how often the scores are written."""
    def top() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(3, 16), nn.Dropout(0.5), nn.Linear(16, 2))

    each = fit(gradient_learner(cls, top()), 3, every=1)
    third = fit(gradient_learner(cls, top()), 3, every=3)
    assert each.keys() == third.keys()
    for name, w in each.items():
        assert torch.equal(third[name], w), name


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
