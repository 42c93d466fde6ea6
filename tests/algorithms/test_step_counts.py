"""`algorithm.eval_score_steps`: meta-test scores after several step counts from one adaptation.

Each count's scores must be those of a meta-test run with that many steps (`eval_inner_steps`),
for every learner that shares the inner loop; the plain metric stays the score after
`eval_inner_steps`; validation keeps one score; bad values and ProtoNet are refused, naming the
key, before anything is computed.
"""
from __future__ import annotations

import io
from dataclasses import replace
from functools import partial

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from metalearn.algorithms.anil import ANIL
from metalearn.algorithms.finetune import FineTune
from metalearn.algorithms.maml import MAML
from metalearn.algorithms.protonet import ProtoNet
from metalearn.algorithms.reptile import Reptile
from metalearn.algorithms.step_scores import KEY, MAX_STEPS, score_steps
from metalearn.conf import compose_train
from metalearn.data.episode import Episode
from metalearn.instantiate import build
from metalearn.models.split import SplitModel
from metalearn.objectives import Classification, Regression
from metalearn.registry.metric_writes import result_rows
from tests.algorithms.test_family import TinyNet
from tests.algorithms.test_regression_oracles import TinyRegressor, regression_episode
from tests.conftest import toy_episode

COUNTS = [3, 0, 1]  # in any order; stored increasing
LEARNERS = {
    "maml": (MAML, {}), "fomaml": (MAML, {"first_order": True}),
    "metasgd": (MAML, {"learn_inner_lr": True}), "anil": (ANIL, {}),
    "reptile": (Reptile, {}), "finetune": (FineTune, {}),
}
# Both sides run the same float64 operations in the same order (an adaptation cut after k steps
# goes on from the same detached weights a k-step run ends with), so they agree to the last bit
# on any CPU; the tolerance only allows a kernel that sums in another order for another shape:
# a few float64 roundings (1e-16 each) over a score of tens of operations.
REL = 1e-12


def learner(name: str, objective: str, **kw):
    """A float64 two-layer net (body and head, as ANIL needs) with inner step size 0.4."""
    cls, extra = LEARNERS[name]
    torch.manual_seed(0)
    top = (TinyNet() if objective == "acc" else TinyRegressor()).double()
    inner = {"inner_lr": 0.4} if cls is FineTune else {"inner_lr": 0.4, "inner_steps": 2}
    return cls(model=SplitModel(top=top), objective=Classification() if objective == "acc" else Regression(),
               optimizer=partial(torch.optim.SGD, lr=0.1), **inner, **extra, **kw)


def episodes(objective: str) -> list[Episode]:
    """Two groups: `a` of three episodes, `b` of one (scored by its query examples, as ARSC)."""
    if objective == "acc":
        eps = [toy_episode(s, n=8, family=f"{g}/t0") for s, g in ((1, "a"), (2, "a"), (3, "a"), (4, "b"))]
        return [replace(e, support_x=e.support_x.double(), query_x=e.query_x.double()) for e in eps]
    return [replace(regression_episode(s, n=8), family=f"{g}/t0", group=g)
            for s, g in ((1, "a"), (2, "a"), (3, "a"), (4, "b"))]


def meta_test(m, eps: list[Episode], validate: bool = False) -> tuple[list[dict], dict[str, float]]:
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                         accelerator="cpu", inference_mode=False)
    loader = DataLoader(eps, batch_size=None)
    if validate:
        trainer.validate(m, dataloaders=loader)
    else:
        trainer.test(m, dataloaders=loader)
    return m.test_results, {k: float(v) for k, v in trainer.callback_metrics.items()}


def by_key(rows: list[dict]) -> dict[tuple[str, str], dict]:
    return {(r["group"], r["metric"]): r for r in rows}


@pytest.mark.parametrize("objective", ["acc", "mse"])
@pytest.mark.parametrize("name", list(LEARNERS))
def test_each_count_scores_as_a_meta_test_with_that_many_steps(name, objective):
    eps = episodes(objective)
    rows, logged = meta_test(learner(name, objective, eval_inner_steps=2, eval_score_steps=COUNTS), eps)
    got = by_key(rows)
    for steps in (0, 1, 2, 3):
        alone = by_key(meta_test(learner(name, objective, eval_inner_steps=steps), eps)[0])
        # the plain metric is the score after eval_inner_steps (2, not a listed count)
        for (group, metric), want in alone.items():
            names = [metric] if steps == 2 else [f"{metric}@{steps}"]
            for shown in names:
                row = got[group, shown]
                assert row["value"] == pytest.approx(want["value"], rel=REL, abs=1e-15), (group, shown)
                assert row["ci95"] == pytest.approx(want["ci95"], rel=REL, abs=1e-15), (group, shown)
                assert (row["episodes"], row["shots"], row["queries"]) == (
                    want["episodes"], want["shots"], want["queries"])
                assert logged[f"test/{group}/{shown}"] == pytest.approx(want["value"], rel=1e-6)
                assert f"test/{group}/{shown}_ci95" in logged
    assert {m for _, m in got} == {objective, *(f"{objective}@{s}" for s in (0, 1, 3))}
    assert {f"test/{objective}@{s}" for s in (0, 1, 3)} <= set(logged)
    if objective == "mse":  # the counts really score different weights
        values = [got["a", f"mse@{s}"]["value"] for s in (0, 1, 3)]
        assert len(set(values)) == 3, values


def test_one_adaptation_serves_every_count():
    m = learner("fomaml", "mse", eval_inner_steps=2, eval_score_steps=[0, 1, 10])
    taken = []
    adapt = m.adapt_support

    def counting(params, xs, ys, steps, *args, **kw):
        taken.append(steps)
        return adapt(params, xs, ys, steps, *args, **kw)

    m.adapt_support = counting
    m.test_episode(episodes("mse")[0])
    assert sum(taken) == 10 and taken == [1, 1, 8]  # on to 1, to 2 (eval_inner_steps), to 10


def test_the_setting_changes_nothing_left_at_null_and_validation_keeps_one_score():
    eps = episodes("mse")
    plain, plain_logged = meta_test(learner("maml", "mse", eval_inner_steps=2), eps)
    assert {r["metric"] for r in plain} == {"mse"} and not any("@" in k for k in plain_logged)
    with_counts, _ = meta_test(learner("maml", "mse", eval_inner_steps=2, eval_score_steps=[0, 5]), eps)
    assert [r for r in with_counts if r["metric"] == "mse"] == plain  # the same rows, bit for bit
    _, val_logged = meta_test(learner("maml", "mse", eval_inner_steps=2, eval_score_steps=[0, 5]), eps,
                              validate=True)
    assert "val/mse" in val_logged and not any("@" in k for k in val_logged)


def test_step_rows_are_what_the_registry_keeps():
    rows, _ = meta_test(learner("reptile", "acc", eval_inner_steps=1, eval_score_steps=[0, 2]), episodes("acc"))
    kept = result_rows(7, rows)
    assert {(r["group"], r["metric"]) for r in kept} == {
        (g, m) for g in ("a", "b") for m in ("acc", "acc@0", "acc@2")}
    one_episode = next(r for r in kept if r["group"] == "b" and r["metric"] == "acc@2")
    assert one_episode["episodes"] == 1 and one_episode["ci95"] > 0  # over its query examples


@pytest.mark.parametrize("value, message", [
    (5, "must be a list of step counts"),
    ("0,1,10", "must be a list of step counts"),
    ([], "must list 1 to 16 step counts"),
    (list(range(17)), "must list 1 to 16 step counts"),
    ([0, -1], "whole numbers of steps from 0"),
    ([0, 1.5], "whole numbers of steps from 0"),
    ([True], "whole numbers of steps from 0"),
    (["1"], "whole numbers of steps from 0"),
    ([0, MAX_STEPS + 1], f"to {MAX_STEPS}"),
    ([1, 0, 1], "lists a step count twice"),
])
def test_bad_values_are_refused_naming_the_key(value, message):
    with pytest.raises(ValueError, match=KEY.replace(".", r"\.")) as err:
        score_steps(value)
    assert message in str(err.value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        learner("maml", "mse", eval_score_steps=value)


def test_good_values_are_kept_in_increasing_order():
    assert score_steps(None) is None
    assert score_steps([10, 0, 1]) == (0, 1, 10)
    assert score_steps((MAX_STEPS,)) == (MAX_STEPS,)


def test_the_decline_to_adapt_check_is_not_combined_with_several_counts():
    with pytest.raises(ValueError, match=r"algorithm\.eval_score_steps .*eval_adapt_check=false"):
        learner("reptile", "acc", eval_score_steps=[0, 1], eval_adapt_check=True)


def test_protonet_refuses_the_setting_before_anything_is_built():
    with pytest.raises(ValueError, match=r"algorithm\.eval_score_steps: algorithm=protonet takes no "
                                         r"adaptation steps"):
        ProtoNet(model=None, objective=Classification(), optimizer=None, eval_score_steps=[0, 1])


def test_a_run_config_reaches_the_learner_and_bad_values_stop_it_at_build():
    """As train() builds the algorithm: Hydra's list, checked and kept as a tuple (a checkpoint's
    hyperparameters must load with weights_only); ProtoNet refuses any but null."""
    def built(*overrides: str, experiment: str = "maml_sinusoid"):
        cfg = compose_train([f"experiment={experiment}", *overrides])
        return build(cfg.algorithm, model=build(cfg.model), objective=build(cfg.objective))

    assert built().eval_score_steps is None
    for experiment in ("maml_sinusoid", "finetune_sinusoid", "reptile_sinusoid"):
        m = built("algorithm.eval_score_steps=[10,0,1]", experiment=experiment)
        assert m.eval_score_steps == (0, 1, 10)
        # a checkpoint's hyperparameters hold plain values, which the meta-test's weights_only load reads
        buffer = io.BytesIO()
        torch.save({"hyper_parameters": dict(m.hparams)}, buffer)
        buffer.seek(0)
        assert torch.load(buffer, weights_only=True)["hyper_parameters"]["eval_score_steps"] == (0, 1, 10)
    with pytest.raises(ValueError, match=r"algorithm\.eval_score_steps must hold whole numbers"):
        built("algorithm.eval_score_steps=[0,-1]")
    with pytest.raises(ValueError, match=r"algorithm\.eval_score_steps: algorithm=protonet"):
        built("algorithm=protonet", "algorithm.eval_score_steps=[0,1]")
    assert built(experiment="protonet_omniglot").hparams["eval_score_steps"] is None
