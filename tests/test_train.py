"""The real entry point: end to end, resume, and bad input refused before any compute."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from hydra.errors import MissingConfigException
from pytorch_lightning import Callback

from metalearn.train import train
from tests.conftest import run_py, scalars


def losses(out_dir: Path) -> dict[int, float]:
    """train/query_loss per step from the CSV logger."""
    (path,) = out_dir.glob("csv/version_*/metrics.csv")
    rows = list(csv.DictReader(path.open()))
    return {int(r["step"]): float(r["train/query_loss"]) for r in rows if r.get("train/query_loss")}


def test_run_py_debug_fast_end_to_end_writes_tensorboard_test_scalars(tmp_path):
    run_py(tmp_path, "experiment=reptile_amazon", "debug=fast")
    (version,) = tmp_path.glob("tensorboard/reptile_amazon/version_*")
    acc = scalars(version)
    tags = set(acc.Tags()["scalars"])
    for domain in ["automotive", "computer_video_games", "office_products"]:
        assert {f"test/{domain}/acc", f"test/{domain}/acc_ci95"} <= tags
    assert {"train/query_loss", "train/query_acc", "train/query_acc_pre", "val/acc"} <= tags
    (last,) = tmp_path.glob("reptile_amazon/runs/*/checkpoints/last.ckpt")
    # the end of training, even when the last validation did not improve on the best
    assert torch.load(last, weights_only=False)["global_step"] == 4


def test_same_seed_same_losses_other_seed_other_losses(make_cfg, tmp_path):
    runs = {}
    for name, seed in [("a", 5), ("b", 5), ("c", 6)]:
        cfg = make_cfg("logger=csv", "test=false", "data.steps_per_epoch=2",
                       "trainer.max_steps=2", f"seed={seed}", out=name)
        train(cfg)
        runs[name] = losses(tmp_path / name)
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]


@pytest.mark.parametrize("override, error, message", [
    ("data.shots=40", ValueError, r"K \+ L = 40 \+ 5 .* only \d+ in class"),
    ("data.path=/no/such/arsc", FileNotFoundError, "/no/such/arsc"),
    ("data.heldout=[automotive,kitchenware]", ValueError, r"unknown domain\(s\) \['kitchenware'\]"),
    ("model.trainable_layers=9", ValueError, r"trainable_layers must be an integer in \[0, 2\]"),
])
def test_bad_input_is_refused_before_training(make_cfg, override, error, message, monkeypatch):
    import pytorch_lightning as pl
    monkeypatch.setattr(pl.Trainer, "fit", lambda *a, **k: pytest.fail("training started"))
    with pytest.raises(error, match=message):
        train(make_cfg(override))


@pytest.mark.parametrize("overrides, message", [
    (["objective=regression", "algorithm=protonet"],
     "algorithm: ProtoNet serves objective=classification only, not objective=regression"),
    (["objective=regression"],
     "data: ReviewEpisodes serves objective=classification only, not objective=regression: "
     "reviews are labelled"),
    (["objective.mode=min"], "objective.mode='min', but objective=classification computes mode"),
])
def test_an_objective_the_run_cannot_serve_is_refused_before_anything_is_built(
        make_cfg, overrides, message, monkeypatch):
    from metalearn.data.review_datamodule import ReviewEpisodes
    monkeypatch.setattr(ReviewEpisodes, "__init__", lambda *a, **k: pytest.fail("data built"))
    with pytest.raises(ValueError, match=message):
        train(make_cfg(*overrides))


def test_the_monitor_and_the_sweep_value_follow_the_objective(make_cfg):
    for objective, metric, mode in (("classification", "val/acc", "max"),
                                    ("regression", "val/mse", "min")):
        cfg = make_cfg(f"objective={objective}")
        assert cfg.callbacks.model_checkpoint.monitor == cfg.optimized_metric == metric
        assert cfg.callbacks.model_checkpoint.mode == mode


def test_unknown_algorithm_lists_the_known_ones(make_cfg):
    with pytest.raises(MissingConfigException, match="algorithm/nosuch") as err:
        make_cfg("algorithm=nosuch")
    assert "reptile" in str(err.value) and "fomaml" in str(err.value)


@pytest.mark.parametrize("algorithm", ["maml", "metasgd", "anil", "protonet", "finetune"])
def test_every_algorithm_trains_and_meta_tests_on_the_reviews(make_cfg, algorithm):
    metrics = train(make_cfg(f"algorithm={algorithm}", "logger=csv", "trainer.max_steps=2",
                             "trainer.limit_val_batches=4", "data.test_episodes=1"))
    assert 0.0 <= metrics["test/acc"] <= 1.0
    assert {f"test/{d}/acc" for d in ("automotive", "office_products")} <= set(metrics)
    assert ("test/automotive/acc_pre" in metrics) == (algorithm != "protonet")


@pytest.mark.parametrize("experiment, loss", [
    ("reptile_amazon", "train/query_loss"),  # manual optimization: the all-reduce is ours
    ("protonet_omniglot", "train/query_loss"),  # automatic: DDP's own (an unused head stalls it)
    ("finetune_omniglot", "train/loss"),  # automatic, pooled head, N-way head unused in training
])
def test_ddp_over_two_processes_takes_the_same_steps_as_one(tmp_path, experiment, loss):
    """trainer=ddp_sim (2 CPU processes, the meta-batch's tasks split between them, the
    gradient averaged) must reach the single-process weights and losses."""
    # Plain SGD outside: a conv bias before batch norm has a gradient of zero up to rounding,
    # which Adam would turn into steps of a full learning rate in either direction.
    common = [f"experiment={experiment}", "debug=fast", "test=false", "registry=off",
              "trainer.limit_val_batches=2", "data.val_episodes=2",
              "algorithm.optimizer._target_=torch.optim.SGD"]
    weights, losses = {}, {}
    for trainer in ("default", "ddp_sim"):
        out = tmp_path / trainer
        out.mkdir()
        run_py(out, *common, f"trainer={trainer}")
        (last,) = out.glob(f"{experiment}/runs/*/checkpoints/last.ckpt")
        ckpt = torch.load(last, weights_only=False)
        assert ckpt["global_step"] == 4
        weights[trainer] = ckpt["state_dict"]
        (version,) = out.glob(f"tensorboard/{experiment}/version_*")
        losses[trainer] = [e.value for e in scalars(version).Scalars(loss)]
    assert len(losses["default"]) == 4
    assert losses["ddp_sim"] == pytest.approx(losses["default"], abs=1e-6)
    for name, w in weights["default"].items():
        torch.testing.assert_close(weights["ddp_sim"][name], w, atol=1e-6, rtol=1e-5)


class EpisodeLog(Callback):
    """Writes, per training step, a fingerprint of each episode it trained on."""

    def __init__(self, path: str) -> None:
        self.path, self.steps = Path(path), {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.steps[trainer.global_step] = [
            [ep.family, ep.support_y.tolist(), ep.support_x["input_ids"].sum(1).tolist()]
            for ep in batch]

    def on_train_end(self, trainer, pl_module) -> None:
        self.path.write_text(json.dumps(self.steps))


def test_every_epoch_trains_on_new_episodes_and_a_resumed_run_continues_the_same_run(
        make_cfg, tmp_path):
    """Episodes and losses: an uninterrupted run of 6 steps (3 epochs) against 2 steps, then
    resumed from the checkpoint to 6. Dropout is on, so the random state must resume too."""
    # Lightning itself must move the episode sampler to the next epoch: a test that calls
    # set_epoch by hand passed while every epoch replayed epoch 0's episodes.
    def run(name: str, *extra: str) -> tuple[dict, dict]:
        log = tmp_path / f"{name}.json"
        train(make_cfg("logger=csv", "test=false", "data.steps_per_epoch=2", "model.dropout=0.1",
                       "+callbacks.episodes._target_=tests.test_train.EpisodeLog",
                       f"+callbacks.episodes.path={log}", *extra, out=name))
        episodes = {int(k): v for k, v in json.loads(log.read_text()).items()}
        return episodes, losses(tmp_path / name)

    full, full_losses = run("full", "trainer.max_steps=6")
    assert sorted(full) == sorted(full_losses) == list(range(6))
    assert full[0] != full[2] != full[4] and full[1] != full[3] != full[5]
    _, first_losses = run("first", "trainer.max_steps=2", "algorithm.scheduler.total_steps=6")
    assert first_losses == {s: full_losses[s] for s in (0, 1)}
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed, resumed_losses = run("resumed", "trainer.max_steps=6", f"ckpt_path={ckpt}")
    assert resumed == {s: full[s] for s in range(2, 6)}
    assert resumed_losses == {s: full_losses[s] for s in range(2, 6)}
