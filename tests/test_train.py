"""The real entry point: end to end, resume, and bad input refused before any compute."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.errors import MissingConfigException
from pytorch_lightning import Callback
from tensorboard.plugins.hparams import metadata as hp_metadata

from metalearn.cli import main as cli_main
from metalearn.registry import Store
from metalearn.train import train
from tests.conftest import ROOT, run_py, scalars, train_job


def losses(out_dir: Path) -> dict[int, float]:
    """train/query_loss per step from the CSV logger."""
    (path,) = out_dir.glob("csv/*/*/metrics.csv")
    rows = list(csv.DictReader(path.open()))
    return {int(r["step"]): float(r["train/query_loss"]) for r in rows if r.get("train/query_loss")}


def test_run_py_debug_fast_end_to_end_writes_tensorboard_test_scalars(tmp_path):
    run_py(tmp_path, "experiment=reptile_amazon", "debug=fast")
    (version,) = tmp_path.glob("tensorboard/reptile_amazon/*")
    assert version.name == "attempt-1_debug=fast"  # the registry's id; experiment= is the name
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


@pytest.mark.parametrize("experiment, loss, ddp", [
    # manual optimization: the all-reduce is ours; under ddp_spawn, which pickles the module
    # and the loggers into fresh processes
    ("reptile_amazon", "train/query_loss", "ddp_sim"),
    # automatic: DDP's own (an unused head stalls it). Forked workers: the same DDP, without
    # two more interpreters importing torch and Lightning
    ("protonet_omniglot", "train/query_loss", "ddp_sim_fork"),
    ("finetune_omniglot", "train/loss", "ddp_sim_fork"),  # pooled head, N-way head unused
])
def test_ddp_over_two_processes_takes_the_same_steps_as_one(tmp_path, experiment, loss, ddp):
    """trainer=ddp_sim (2 CPU processes, the meta-batch's tasks split between them, the
    gradient averaged) must reach the single-process weights and losses, and its validation and
    meta-test (the fixed episodes split between the processes, their records gathered) the
    single-process scores."""
    # Plain SGD outside: a conv bias before batch norm has a gradient of zero up to rounding,
    # which Adam would turn into steps of a full learning rate in either direction.
    # reptile_amazon's tiny debug BERT scores 0.5 on every episode, so its scores cannot tell a
    # gathered evaluation from one process's share: its meta-test is left out (26 s).
    scored = experiment != "reptile_amazon"
    common = [f"experiment={experiment}", "debug=fast", "registry=off",
              "trainer.limit_val_batches=3", "data.val_episodes=3", "data.test_episodes=3",
              *([] if scored else ["test=false"]), "algorithm.optimizer._target_=torch.optim.SGD"]
    # One multirun, so the two runs share one process start (seconds of imports on 2 cores).
    proc = run_py(tmp_path, "-m", *common, f"trainer=default,{ddp}")
    assert "MEMBER: 2/2" in proc.stdout + proc.stderr  # the second process did join
    weights, losses, scores = {}, {}, {}
    for trainer, job in (("default", "0"), (ddp, "1")):
        (out,) = tmp_path.glob(f"{experiment}/multiruns/*/{job}")
        assert f"trainer={trainer}" in (out / ".hydra" / "overrides.yaml").read_text()
        ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)
        assert ckpt["global_step"] == 4
        weights[trainer] = ckpt["state_dict"]
        # registry=off: each logger version is named <sweep folder>-<job>_<job's overrides>, the
        # overrides cut where long (the job's own trainer= is checked above)
        (version,) = tmp_path.glob(f"tensorboard/{experiment}/*-{job}_*")
        events = scalars(version)
        losses[trainer] = [e.value for e in events.Scalars(loss)]
        scores[trainer] = {tag: [e.value for e in events.Scalars(tag)]
                           for tag in events.Tags()["scalars"] if tag.startswith(("val/", "test/"))}
    assert len(losses["default"]) == 4
    # float32, the same tasks in another order of sums (and, where the batch is pooled, another
    # batch size per convolution). Measured on an Intel Xeon (AVX-512) with PyTorch's and oneDNN's
    # own kernels, with both pinned to AVX2, and with oneDNN off: reptile and protonet equal to
    # the bit, finetune_omniglot up to 9.5e-7 in a loss of 6.6 (two float32 steps) and 1.2e-7 in
    # a weight. A process that skips the all-reduce, or sums the processes' gradients instead of
    # averaging them, moves these by far more (seen: reptile_amazon fails either way).
    assert losses[ddp] == pytest.approx(losses["default"], abs=1e-5)
    for name, w in weights["default"].items():
        torch.testing.assert_close(weights[ddp][name], w, atol=1e-6, rtol=1e-5)
    # An odd number of episodes per check and per group: one process scores one more than the
    # other. Logging one process's share instead of the gathered records moves the Omniglot
    # means (seen: val/acc 0.58 against 0.63).
    assert "val/acc" in scores["default"]
    assert any(t.startswith("test/") for t in scores["default"]) == scored
    assert sorted(scores[ddp]) == sorted(scores["default"])
    for tag, values in scores["default"].items():
        assert scores[ddp][tag] == pytest.approx(values, abs=1e-5), tag


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
        # algorithm=reptile: its outer step size is annealed, so the scheduler's state resumes too
        train(make_cfg("algorithm=reptile", "logger=csv", "test=false", "data.steps_per_epoch=2",
                       "model.dropout=0.1",
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


class BestLog(Callback):
    """Writes the monitored checkpoint callback's best file and score when training ends."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_train_end(self, trainer, pl_module) -> None:
        best = trainer.checkpoint_callbacks[0]
        score = None if best.best_model_score is None else float(best.best_model_score)
        self.path.write_text(json.dumps([best.best_model_path, score]))


def test_a_run_resumed_into_a_new_folder_keeps_the_best_checkpoint_of_the_steps_before(make_cfg, tmp_path):
    """Lightning forgets the best score when the checkpoint folder changes (each run writes its
    own), so `best` would mean best since the resume. Weights that never move (outer step 0)
    score alike at every check: the first check's file stays the best, as in the uninterrupted run."""
    def run(name: str, *extra: str) -> tuple[str, float]:
        log = tmp_path / f"{name}.best.json"
        train(make_cfg("test=false", "data.steps_per_epoch=2", "algorithm.optimizer.lr=0.0",
                       "+callbacks.best._target_=tests.test_train.BestLog", f"+callbacks.best.path={log}",
                       *extra, out=name))
        return tuple(json.loads(log.read_text()))

    full_best, full_score = run("full", "trainer.max_steps=6")
    first_best, first_score = run("first", "trainer.max_steps=4")
    ckpt = tmp_path / "first" / "checkpoints" / "last.ckpt"
    resumed_best, resumed_score = run("resumed", "trainer.max_steps=6", f"ckpt_path={ckpt}")
    assert Path(full_best).name == Path(first_best).name == "step000002.ckpt"
    assert (resumed_best, resumed_score) == (first_best, first_score)
    assert resumed_score == full_score
    assert not list((tmp_path / "resumed" / "checkpoints").glob("step*.ckpt"))  # nothing better since


def test_validate_scores_a_checkpoint_as_training_scored_it(make_cfg):
    """`validate=true` on the checkpoint training kept gives the meta-validation score training
    logged for it; at another K (data.shots) it scores differently, and nothing is meta-tested."""
    trained = train(make_cfg("test=false", out="fit"))
    (best,) = Path(make_cfg(out="fit").paths.output_dir).glob("checkpoints/step*.ckpt")
    again = train(make_cfg("train=false", "test=false", "validate=true", f"ckpt_path={best}",
                           out="again"))
    assert again["val/acc"] == pytest.approx(trained["val/acc"], abs=1e-6)
    assert not [k for k in again if k.startswith("test/")]
    one_shot = train(make_cfg("train=false", "test=false", "validate=true", f"ckpt_path={best}",
                              "data.shots=1", out="one_shot"))
    assert one_shot["val/acc"] != pytest.approx(trained["val/acc"], abs=1e-6)


@pytest.mark.parametrize("content, message", [
    (None, "no such checkpoint file"),
    (b"", r"cannot load it as a checkpoint: not a PyTorch checkpoint \(an empty file\)"),
    (b"not a checkpoint", r"cannot load it as a checkpoint: not a PyTorch checkpoint \(not a zip archive"),
])
def test_a_bad_checkpoint_is_named_before_anything_is_built(make_cfg, tmp_path, monkeypatch,
                                                            content, message):
    import pytorch_lightning as pl
    ckpt = tmp_path / "some.ckpt"
    if content is not None:
        ckpt.write_bytes(content)
    monkeypatch.setattr(pl.Trainer, "test", lambda *a, **k: pytest.fail("meta-testing started"))
    with pytest.raises((ValueError, FileNotFoundError), match=f"{ckpt}: {message}"):
        train(make_cfg("train=false", f"ckpt_path={ckpt}"))


def test_a_pickled_object_in_a_checkpoint_is_not_run(make_cfg, tmp_path):
    ckpt = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Path("/")}, ckpt)  # any non-tensor class
    with pytest.raises(ValueError, match="cannot load it as a checkpoint"):
        train(make_cfg("train=false", f"ckpt_path={ckpt}"))


def test_a_config_that_does_not_compose_is_a_failed_attempt(tmp_path):
    url = f"sqlite:///{tmp_path}/registry.db"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "experiment=no_such_experiment", "seed=3",
         f"registry.url={url}"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PROJECT_ROOT": str(ROOT)})
    assert proc.returncode == 1 and "no_such_experiment" in proc.stderr
    assert "Traceback" not in proc.stderr
    (row,) = Store(url).list_attempts()
    assert row["status"] == "failed" and row["experiment"] == "no_such_experiment"
    assert "no_such_experiment" in Store(url).get_attempt(row["id"])["error"]


@pytest.mark.parametrize("where", ["paths.log_dir", "paths.root_dir"])
def test_a_failed_launch_is_recorded_in_the_registry_its_paths_name(tmp_path, where):
    """The registry lives in paths.log_dir (by default paths.root_dir/logs): a command line
    that moves them and then fails is recorded there, not under the project root."""
    elsewhere = tmp_path / "elsewhere"
    project = tmp_path / "project"  # PROJECT_ROOT: what the registry would default to
    env = {k: v for k, v in os.environ.items() if k != "METALEARN_REGISTRY_URL"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "experiment=no_such_experiment",
         f"{where}={elsewhere}"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**env, "PROJECT_ROOT": str(project)})
    assert proc.returncode == 1
    db = elsewhere / "registry.db" if where == "paths.log_dir" else elsewhere / "logs" / "registry.db"
    (row,) = Store(f"sqlite:///{db}").list_attempts()
    assert row["status"] == "failed" and row["experiment"] == "no_such_experiment"
    assert not (project / "logs" / "registry.db").exists()


def test_every_logger_names_the_run_by_its_attempt_and_tensorboard_has_the_hparams(
        make_cfg, tmp_path, capsys, monkeypatch):
    metrics = train_job(make_cfg("logger=many_loggers", "seed=3", "trainer.max_steps=2",
                                 "trainer.limit_val_batches=2", "data.test_episodes=1"))  # attempt 1
    assert {"val/acc", "test/acc"} <= set(metrics)  # meta-training's metrics too (run.py's return)
    version = "attempt-1_data.test_episodes=1_debug=fast_seed=3_trainer.limit_val_batches=2_trainer.max_steps=2"
    run = tmp_path / "logs" / "tensorboard" / "reptile_amazon" / version
    assert [p.name for p in run.parent.iterdir()] == [version]
    assert (tmp_path / "out" / "csv" / "reptile_amazon" / version / "metrics.csv").is_file()
    url = f"sqlite:///{tmp_path}/logs/registry.db"
    row = Store(url).get_attempt(1)
    assert row["log_name"] == f"reptile_amazon/{version}"
    assert row["config"]["logger"]["tensorboard"]["version"] == version  # the config as it ran
    monkeypatch.setenv("COLUMNS", "300")
    assert cli_main(["--url", url, "runs", "show", "1"]) == 0
    assert f"reptile_amazon/{version}" in capsys.readouterr().out

    events = scalars(run)
    hparams = events.PluginTagToContent("hparams")
    experiment = hp_metadata.parse_experiment_plugin_data(hparams[hp_metadata.EXPERIMENT_TAG])
    assert {"test/acc", "val/acc", "test/automotive/acc"} <= {m.name.tag for m in experiment.metric_infos}
    start = hp_metadata.parse_session_start_info_plugin_data(hparams[hp_metadata.SESSION_START_INFO_TAG])
    assert start.hparams["seed"].number_value == 3 and start.hparams["train"].string_value == "true"
    assert start.hparams["algorithm._target_"].string_value.endswith("Reptile")
    assert start.hparams["data.heldout"].string_value.startswith('["automotive"')
    # the tab reads the values from the run's scalars, to which nothing is added
    assert [e.value for e in events.Scalars("test/acc")] == [pytest.approx(metrics["test/acc"])]
    assert [e.step for e in events.Scalars("train/query_loss")] == [0, 1]


def test_a_sweep_names_each_jobs_run_by_its_attempt_and_its_own_overrides(tmp_path):
    run_py(tmp_path, "-m", "experiment=reptile_amazon", "debug=fast", "train=false",
           "data.test_episodes=1", "seed=1,2")
    runs = sorted(p.name for p in (tmp_path / "tensorboard" / "reptile_amazon").iterdir())
    # the job's overrides as Hydra's sweeper hands them on (it writes booleans as Python does)
    assert runs == [f"attempt-{i}_data.test_episodes=1_debug=fast_seed={i}_train=False" for i in (1, 2)]
    rows = sorted(Store(f"sqlite:///{tmp_path / 'registry.db'}").list_attempts(), key=lambda r: r["id"])
    assert [r["log_name"] for r in rows] == [f"reptile_amazon/{run}" for run in runs]
    assert [(r["name"], r["algorithm"]) for r in rows] == [("reptile_amazon/0", "none"), ("reptile_amazon/1", "none")]
