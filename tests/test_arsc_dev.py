"""experiments/arsc_dev.py: test-time settings chosen on the ARSC target tasks' .dev files, and
the records that scored .dev kept out of every table of test results."""
from __future__ import annotations

import sys

from tests.test_result_checkpoints import record
from tests.test_results import _tables_module

CKPT = "/runs/t/checkpoints/step000300.ckpt"


def scored(rid: str, *, lr: float | None, steps: dict[int, tuple[float, float]], dev: bool,
           score_steps: bool = True) -> dict:
    """A meta-test of CKPT on two tasks: {steps: (books/t2 acc, dvd/t2 acc)}."""
    results = []
    for n, values in steps.items():
        for group, value in zip(("books/t2", "dvd/t2"), values, strict=True):
            metric = f"acc@{n}" if score_steps else "acc"
            results.append({"group": group, "metric": metric, "value": value, "ci95": 0.03,
                            "episodes": 1, "shots": 5, "queries": 800})
    r = record(rid, ckpt=CKPT, overrides=("train=false", f"algorithm.eval_inner_lr={lr}"), results=tuple(results))
    r["experiment"] = "fomaml_arsc"
    r["config"]["algorithm"] = {"inner_lr": 0.05, "eval_inner_lr": lr, "eval_inner_steps": max(steps)}
    r["config"]["data"] = {"test_protocol": "arsc_dev" if dev else "arsc"}
    mean = sum(steps[max(steps)]) / 2
    r["metrics"] = {"test/acc": {"last": mean}, "test/acc_ci95": {"last": 0.02}}
    return r


def trainer() -> dict:
    r = record("t", ckpt=CKPT)
    r["experiment"] = "fomaml_arsc"
    return r


def test_the_highest_dev_mean_is_chosen_and_its_test_is_cited():
    _tables_module()
    dev = sys.modules["arsc_dev"]
    records = [trainer(),
               scored("a", lr=None, steps={1: (0.80, 0.70), 10: (0.84, 0.76)}, dev=True),
               scored("b", lr=0.2, steps={1: (0.82, 0.74), 10: (0.86, 0.70)}, dev=True),
               scored("c", lr=None, steps={10: (0.90, 0.80)}, dev=False, score_steps=False)]
    choices = dev.choices(records)
    assert [(c.lr, c.steps, round(c.dev, 4)) for c in choices] == [(0.05, 10, 0.80)]
    assert choices[0].test is records[3]
    text = dev.table(records)
    assert "| 0.05 | 75.0 | 80.0 |" in text and "| 0.2 | 78.0 | 78.0 |" in text
    chosen = next(line for line in text.splitlines() if "10 steps of 0.05" in line)
    assert "80.0" in chosen and "85.0 ± 2.0" in chosen and chosen.endswith("(c)")


def test_a_choice_with_no_meta_test_on_test_says_so():
    _tables_module()
    dev = sys.modules["arsc_dev"]
    records = [trainer(), scored("a", lr=0.2, steps={1: (0.8, 0.7), 5: (0.6, 0.6)}, dev=True)]
    assert "not yet meta-tested" in dev.table(records)
    assert dev.table([trainer()]).startswith("No recorded")


def test_dev_scores_never_reach_the_tables_of_test_results():
    tables = _tables_module()
    rows = sys.modules["result_rows"]
    dev_run = scored("a", lr=None, steps={10: (0.9, 0.9)}, dev=True, score_steps=False)
    test_run = scored("c", lr=None, steps={10: (0.8, 0.8)}, dev=False, score_steps=False)
    assert list(rows.collect([dev_run, test_run])) == [rows.cell_key(test_run)]
    support = sys.modules["support_set"]
    with_zero = scored("z", lr=None, steps={0: (0.5, 0.5), 10: (0.9, 0.9)}, dev=True)
    assert support.table([with_zero]).startswith("No recorded")
    assert tables is not None


def test_the_training_runs_own_meta_test_counts_where_it_used_the_chosen_settings():
    _tables_module()
    dev = sys.modules["arsc_dev"]
    own = trainer()
    own["config"]["algorithm"] = {"inner_lr": 0.05, "eval_inner_lr": None, "eval_inner_steps": 10}
    own["config"]["data"] = {"test_protocol": "arsc"}
    own["metrics"] = {"test/acc": {"last": 0.83}, "test/acc_ci95": {"last": 0.02}}
    grid = scored("a", lr=None, steps={5: (0.80, 0.70), 10: (0.84, 0.76)}, dev=True)
    assert dev.choices([own, grid])[0].test is own
    own["config"]["algorithm"]["eval_inner_steps"] = 5  # it tested after 5 steps, not the chosen 10
    assert dev.choices([own, grid])[0].test is None
