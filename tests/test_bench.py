"""experiments/bench: its equal-math checks and memory replay can fail, and `--quick` runs.

No timing is asserted anywhere (benchmarks print ratios, never timed tests); what is
asserted is that a ratio is only printed for implementations that computed the same thing.
"""
from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from bench.floor import FloorMAML, FloorReptile  # noqa: E402
from bench.handloop import PRE_SCORES, WrittenSteps  # noqa: E402
from bench.libraries import HigherMAML, TorchOptFunctionalMAML, TorchOptMAML  # noqa: E402
from bench.memory import MemoryProbe, mark_tasks, replay  # noqa: E402
from bench.metalearn_fit import MetalearnFit, initial_state  # noqa: E402
from bench.same_math import MathMismatch, Trace, WorkMismatch, assert_same_math  # noqa: E402
from bench.timing import run_contest  # noqa: E402

from metalearn.algorithms.maml import MAML  # noqa: E402
from metalearn.algorithms.reptile import Reptile  # noqa: E402
from metalearn.models.split import SplitModel  # noqa: E402
from metalearn.objectives import Classification  # noqa: E402
from tests.conftest import toy_episode  # noqa: E402

DIM = 64


class ToySource:
    """Seeded random 2-way episodes, `meta_batch` per step."""

    def __init__(self, meta_batch: int = 3) -> None:
        self.meta_batch = meta_batch

    def meta_batch_at(self, step: int):
        return [toy_episode(1000 * step + t, n=6, dim=DIM) for t in range(self.meta_batch)]

    def loader(self, steps: int) -> DataLoader:
        return DataLoader([self.meta_batch_at(s) for s in range(steps)], batch_size=None)


def trainer_cfg(log_every_n_steps: int = 1):
    from omegaconf import OmegaConf

    return OmegaConf.create({"trainer": {"_target_": "pytorch_lightning.Trainer",
                                         "accelerator": "cpu", "devices": 1, "inference_mode": False,
                                         "log_every_n_steps": log_every_n_steps}})


def toy_learner(cls, **kw):
    torch.manual_seed(0)
    model = SplitModel(top=nn.Sequential(nn.Linear(DIM, 32), nn.Tanh(), nn.Linear(32, 2)))
    return cls(model=model, objective=Classification(), optimizer=partial(torch.optim.Adam, lr=0.01), inner_lr=0.3,
               inner_steps=2, **kw)


def contest(cls, floor_cls, steps=2, floor_kw=None, log_every_n_steps=1, **kw):
    learner = toy_learner(cls, **kw)
    source, init = ToySource(), initial_state(learner.model)
    cfg = trainer_cfg(log_every_n_steps)
    loop = dict(inner_lr=learner.inner_lr, inner_steps=learner.inner_steps,
                optimizer=learner.optimizer_factory, scheduler=None, written=WrittenSteps.of(cfg.trainer))
    loop.update(floor_kw or {})
    import copy

    impls = [MetalearnFit(cfg, learner, source, init),
             floor_cls(copy.deepcopy(learner.model), source, init, **loop)]
    return run_contest("toy", impls, steps=steps, timed_from=1, rounds=1, rtol=1e-4, atol=1e-6)


def test_reptile_floor_matches_metalearn_and_a_different_inner_lr_is_caught():
    result = contest(Reptile, FloorReptile)
    assert {"support_loss", "query_loss", "query_loss_pre"} <= set(result.checked["hand-written"])
    with pytest.raises(MathMismatch, match="meta-gradient"):
        contest(Reptile, FloorReptile, floor_kw={"inner_lr": 0.31})


@pytest.mark.parametrize("first_order", [False, True])
def test_maml_implementations_match_metalearn(first_order):
    for impl in (FloorMAML, HigherMAML, TorchOptMAML, TorchOptFunctionalMAML):
        contest(MAML, partial(impl, first_order=first_order), first_order=first_order)


HAND_WRITTEN = {"floor": FloorMAML, "higher": HigherMAML, "TorchOpt (MetaSGD)": TorchOptMAML,
                "TorchOpt (functional)": TorchOptFunctionalMAML}


@pytest.mark.parametrize("first_order", [False, True])
@pytest.mark.parametrize("side", HAND_WRITTEN)
def test_every_side_scores_before_adapting_on_the_steps_metalearn_does(side, first_order):
    """Equal work per timed step: with Lightning writing every 2nd step's scores, metalearn
    forwards its 3 tasks' query sets with the meta-weights on steps 1 and 3 only, and so
    does each hand-written side (counted while they run)."""
    result = contest(MAML, partial(HAND_WRITTEN[side], first_order=first_order), steps=4,
                     log_every_n_steps=2, first_order=first_order)
    assert set(result.pre_forwards) == {"metalearn", HAND_WRITTEN[side].name}
    for counts in result.pre_forwards.values():
        assert counts == [0, 3, 0, 3]


def test_reptile_floor_scores_before_adapting_on_the_steps_metalearn_does():
    result = contest(Reptile, FloorReptile, steps=3, log_every_n_steps=3)
    assert result.pre_forwards == {"metalearn": [0, 0, 3], "hand-written": [0, 0, 3]}


class EveryStepFloor(FloorMAML):
    """Scores before adapting on every step yet claims metalearn's work: what the check catches."""

    def scores_before_adapting(self, step: int) -> bool:
        return True


def test_a_side_scoring_before_adapting_on_other_steps_is_caught_and_the_priced_variants_are_not():
    with pytest.raises(WorkMismatch, match=r"\[3, 3, 3\] against metalearn's \[0, 3, 0\]"):
        contest(MAML, partial(EveryStepFloor, first_order=True), steps=3, log_every_n_steps=2,
                first_order=True)
    for variant, counts in (("every step", [3, 3, 3]), ("never", [0, 0, 0])):
        result = contest(MAML, partial(FloorMAML, first_order=True, pre_scores=variant), steps=3,
                         log_every_n_steps=2, first_order=True)
        assert result.pre_forwards[f"hand-written{PRE_SCORES[variant]}"] == counts
    with pytest.raises(ValueError, match="pre_scores='sometimes'"):
        contest(MAML, partial(FloorMAML, first_order=True, pre_scores="sometimes"), first_order=True)


def test_written_steps_follow_lightnings_rule():
    from omegaconf import OmegaConf

    assert [s for s in range(25) if WrittenSteps.of(OmegaConf.create({"log_every_n_steps": 10}))(s)] == [9, 19]
    assert not any(WrittenSteps(0)(s) for s in range(5))
    assert WrittenSteps.of(OmegaConf.create({})) == WrittenSteps(50)  # Lightning's default
    with pytest.raises(ValueError, match="log_every_n_steps must be >= 0"):
        WrittenSteps(-1)


def test_second_order_against_first_order_is_caught():
    with pytest.raises(MathMismatch):
        contest(MAML, partial(FloorMAML, first_order=True), first_order=False)


def test_assert_same_math_compares_gradients_final_weights_and_scores():
    g, start = {"w": torch.tensor([1.0, -2.0])}, {"w": torch.zeros(2)}
    sc = {"support_loss": 0.5, "query_loss": 0.7}
    final = {"w": torch.tensor([0.1, 0.2])}
    ref = Trace([g, g], [sc, sc], start, final)

    def check(other):
        return assert_same_math("x", ref, other, rtol=1e-5, atol=1e-7, drift=1e-3)

    assert check(ref) == ["query_loss", "support_loss"]
    # within a thousandth of how far training moved the weights: rounding, accepted
    check(Trace([g, g], [sc, sc], start, {"w": torch.tensor([0.1, 0.2001])}))
    off = {"w": torch.tensor([1.0, -2.01])}  # 0.5% off
    cases = {
        "the step-0 meta-gradient of w": Trace([off, g], [sc, sc], start, final),
        "the step-1 meta-gradient differs": Trace([g, off], [sc, sc], start, final),
        "final": Trace([g, g], [sc, sc], start, {"w": torch.tensor([0.1, 0.201])}),
        "steps against": Trace([g], [sc], start, final),
        "step-1 query_loss": Trace([g, g], [sc, {**sc, "query_loss": 0.71}], start, final),
        "step-0 support_loss": Trace([g, g], [{**sc, "support_loss": 0.5001}, sc], start, final),
        "no query_loss": Trace([g, g], [sc, {"support_loss": 0.5}], start, final),
        "other weights": Trace([g, g], [sc, sc], {"w": torch.ones(2)}, final),
    }
    for match, other in cases.items():
        with pytest.raises(MathMismatch, match=match):
            check(other)


def test_replay_counts_only_what_the_step_allocated(tmp_path):
    def mem(ts, nbytes, addr):
        return {"name": "[memory]", "ph": "i", "ts": ts, "args": {"Bytes": nbytes, "Addr": addr}}

    events = [mem(1, 100, 1), mem(2, 50, 2), {"name": "bench.task", "ph": "X", "ts": 3, "dur": 1},
              mem(4, -100, 1), mem(5, -999, 7),  # a free of a tensor from before the step
              {"name": "bench.task", "ph": "X", "ts": 6, "dur": 1}, mem(7, 30, 1)]
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"traceEvents": events}))
    assert replay(path) == (150, [150, 50])


class LeakyReptile(Reptile):
    """Keeps every task's adapted weights: the failure the memory check must see."""

    kept: list

    def task_gradient(self, ep, params):
        grads, scores = super().task_gradient(ep, params)
        self.kept.append({n: g.clone() for n, g in grads.items()})
        return grads, scores


@pytest.mark.parametrize("cls, growth", [(Reptile, 0.0), (LeakyReptile, 1.0)])
def test_memory_probe_sees_a_copy_kept_per_task(cls, growth):
    learner = toy_learner(cls)
    learner.kept = []
    mark_tasks(learner)
    source = ToySource(meta_batch=4)
    probe = MemoryProbe(step=1)
    MetalearnFit(trainer_cfg(), learner, source, initial_state(learner.model)).fit(2, [probe])
    m = probe.result
    assert len(m.held_before_task) == 4
    assert m.growth_per_task() / m.meta_parameters == pytest.approx(growth, abs=0.1)


@pytest.mark.slow
def test_quick_bench_runs_with_its_math_checks(tmp_path):
    """The real entry point: every contest's equal-math check passes, every part reports."""
    proc = subprocess.run([sys.executable, str(ROOT / "experiments/bench/run.py"), "--quick",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (record_file,) = tmp_path.glob("*-quick.json")
    record = json.loads(record_file.read_text())
    assert {r["item"] for r in record["ratios"]} >= {"1", "2", "3", "4"}
    for name, contest in record["contests"].items():
        assert contest["checked_scores"] and all(contest["checked_scores"].values())
        if name in ("reptile-text", "maml-conv4", "fomaml-conv4"):
            # metalearn's task loop does the floor's tensor work
            gflop = contest["settings"]["task_loop_gflop"]
            assert gflop["metalearn"] == pytest.approx(gflop["hand-written"], rel=1e-9)
        # rows 1 and 3: every contestant scored before adapting on metalearn's steps
        pre = contest["pre_forwards_per_step"]
        for side in ("hand-written", "higher", "TorchOpt (MetaSGD)", "TorchOpt (functional)"):
            if side in pre:
                assert pre[side] == pre["metalearn"], (name, side)
        if name in ("maml-conv4", "fomaml-conv4"):  # row i: that forward on every step, on none
            tasks = contest["settings"]["meta_batch"]
            assert pre["hand-written, pre-adaptation scores every step"] == [tasks] * 3
            assert pre["hand-written, no pre-adaptation scores"] == [0] * 3
    vmap = {n for n in record["contests"] if n.startswith("vmap-")}
    assert vmap == {f"vmap-{a}-{m}" for a in ("maml", "fomaml") for m in ("conv4", "sinusoid")}
    assert record["contests"]["reptile-text"]["checked_scores"]["the write-up's way"] == [
        "query_acc", "query_loss", "support_loss"]
    mem = record["memory"]
    assert set(mem) == {"reptile", "maml", "fomaml", "anil", "protonet"}
    for alg in ("reptile", "maml", "fomaml", "anil"):  # never a copy per task
        assert abs(mem[alg]["growth_per_task_copies"]) < 0.1
    assert set(record["flops"]) == {"matmul", "conv4 inner step", "text inner step"}
    assert record["machine"]["torch_threads"] == 1
    assert record["clock"] == "cpu" and "different_math" not in record


def test_a_gpu_plan_runs_trainer_gpu_and_sets_only_keys_an_experiment_has():
    """--device cuda: every metalearn run takes trainer=gpu; --set model.pretrained reaches the
    text model and leaves Conv4's config alone (it has no such key)."""
    from bench.suite import Plan

    plan = Plan.make(False, "cuda", ("model.pretrained=/models/minilm",))
    text = plan.experiment("reptile_amazon", *plan.text_overrides)
    conv = plan.experiment("maml_omniglot", *plan.conv_overrides)
    assert text.trainer.accelerator == conv.trainer.accelerator == "gpu"
    assert text.model.pretrained == "/models/minilm" and "pretrained" not in conv.model
    assert Plan.make(False).experiment("maml_omniglot").trainer.accelerator == "cpu"


def test_the_bench_refuses_a_device_it_cannot_measure():
    from bench import device

    with pytest.raises(SystemExit, match="cpu or cuda"):
        device.use("mps")
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="no CUDA device"):
            device.use("cuda")
    assert device.use("cpu").type == "cpu"


def test_the_gpu_table_is_built_from_the_committed_records():
    """experiments/gpu/table.py: the published GPU wall times come from records in the repo."""
    out = subprocess.run([sys.executable, str(ROOT / "experiments/gpu/table.py")],
                         capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| `")]
    assert len(rows) == 4
    assert "| `trainer=gpu` | 32-true | completed | 43 | 150 | 105 | 77.3 / 79.3 / 78.7 |" in out
    assert "| bf16-mixed | interrupted | 107 | 90 |" in out  # stopped by its time limit, kept
    assert out.strip() in (ROOT / "experiments/README.md").read_text(encoding="utf-8")
