"""docs/algorithms.md's complete algorithm: the page shows the file as it is, the file is short,
its meta-step is first-order MAML's on both objectives, and the page's commands run it."""
from __future__ import annotations

import re
import shlex
from functools import partial

import pytest
import torch
from torch import nn

from examples.first_order_maml import FirstOrderMAML
from metalearn.algorithms.maml import MAML
from metalearn.models.split import SplitModel
from metalearn.objectives import Classification, Regression
from metalearn.train import train
from tests.algorithms.test_oracles import one_meta_step
from tests.algorithms.test_regression_oracles import regression_episode
from tests.conftest import ROOT, compose_config, toy_episode

DOC = ROOT / "docs" / "algorithms.md"
EXAMPLE = ROOT / "examples" / "first_order_maml.py"


def test_the_page_shows_the_example_file_unchanged_and_it_is_short():
    code = EXAMPLE.read_text()
    assert f"```python\n{code}```" in DOC.read_text()
    assert len(code.splitlines()) < 30


@pytest.mark.parametrize("objective, out, episodes", [
    (Classification(), 2, [toy_episode(1), toy_episode(2)]),
    (Regression(), 1, [regression_episode(3), regression_episode(4)]),
])
def test_its_meta_step_is_first_order_maml_on_every_objective(objective, out, episodes):
    steps = {}
    for name, cls, extra in (("example", FirstOrderMAML, {}), ("maml", MAML, {"first_order": True})):
        torch.manual_seed(0)
        top = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, out))
        if out == 1:
            top = top.double()
        learner = cls(model=SplitModel(top=top), objective=objective,
                      optimizer=partial(torch.optim.SGD, lr=0.5), inner_lr=0.3, inner_steps=2,
                      eval_inner_steps=2, **extra)
        start = {n: p.detach().clone() for n, p in top.named_parameters()}
        one_meta_step(learner, episodes)
        steps[name] = {n: p.detach() - start[n] for n, p in top.named_parameters()}
    for n, step in steps["maml"].items():
        assert step.abs().max() > 0
        torch.testing.assert_close(steps["example"][n], step)


def test_it_scores_before_adapting_only_on_the_steps_the_learner_does():
    """The query forward with the meta-weights, read only by the `_pre` scores, runs where the
    learner scores before adapting (the steps whose scores Lightning writes) and nowhere else."""
    torch.manual_seed(0)
    learner = FirstOrderMAML(model=SplitModel(top=nn.Linear(3, 2)), objective=Classification(),
                             optimizer=partial(torch.optim.SGD, lr=0.5), inner_lr=0.3, inner_steps=1)
    forward, calls = learner.outputs_before_adapting, []
    learner.outputs_before_adapting = lambda *args: calls.append(1) or forward(*args)
    for on in (False, True):
        with learner.scoring_before_adapting(on):
            _, scores = learner.task_gradient(toy_episode(1), learner.meta_parameters())
        assert len(calls) == int(on)
        assert ({"query_loss_pre", "query_acc_pre"} <= set(scores)) == on


def page_commands() -> list[list[str]]:
    """The `python run.py ...` commands of the page, as argument lists after run.py."""
    text = re.search(r"```bash\n(.*?)```", DOC.read_text(), re.S).group(1).replace("\\\n", " ")
    return [shlex.split(line)[2:] for line in text.splitlines() if line.startswith("python run.py")]


@pytest.mark.parametrize("index, metric", [(0, "mse"), (1, "acc")])
def test_the_pages_commands_train_it_on_regression_and_classification(tmp_path, index, metric):
    args = page_commands()[index]
    cfg = compose_config([*args, "debug=fast", f"paths.log_dir={tmp_path}", "registry=off",
                          "logger=csv", "callbacks.rich_progress_bar=null"], tmp_path / "out")
    assert cfg.algorithm._target_ == "examples.first_order_maml.FirstOrderMAML"
    metrics = train(cfg)
    assert f"test/{metric}" in metrics and f"val/{metric}" in metrics
    assert metrics["train/query_loss"] == metrics["train/query_loss"]  # trained: not NaN
