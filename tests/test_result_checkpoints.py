"""The results tables say which checkpoint each meta-test scored, and show per-step scores per group.

`result_rows.checkpoint_rule` reads a run's config as train() picks the checkpoint it tests
(`best_checkpoint`: the first checkpoint callback's best, else the latest save, else the weights
at the end of training); a meta-test of a checkpoint inherits the rule of the run that saved it.
"""
from __future__ import annotations

import sys

from tests.test_results import _tables_module

MONITORED = {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint", "monitor": "val/acc", "save_top_k": 1}
LAST = {"_target_": "pytorch_lightning.callbacks.ModelCheckpoint", "monitor": None, "filename": "last"}


def record(rid: str, *, callbacks: dict | None = None, ckpt: str | None = None, overrides: tuple = (),
           limit_val: float = 1.0, results: tuple = ()) -> dict:
    config = {"callbacks": {"model_checkpoint": MONITORED, "last_checkpoint": LAST} if callbacks is None
              else callbacks, "trainer": {"max_steps": 1000, "limit_val_batches": limit_val},
              "objective": {"metric": "acc", "mode": "max"}, "seed": 1,
              "algorithm": {"inner_lr": 0.4, "eval_inner_lr": None}}
    return {"id": rid * 8, "cite": rid, "experiment": "maml_omniglot", "status": "completed",
            "overrides": ["experiment=maml_omniglot", *overrides], "config": config, "ckpt_path": ckpt,
            "output_dir": f"/runs/{rid}", "hardware": {}, "started_at": None, "ended_at": None,
            "metrics": {}, "test_results": list(results)}


def rows_module():
    _tables_module()
    return sys.modules["result_rows"]


def test_the_rule_follows_the_config_train_reads():
    rule = rows_module().checkpoint_rule
    assert rule(record("a")["config"]) == "best val/acc"
    assert rule(record("a", callbacks={})["config"]) == "last"  # callbacks=none: the final weights
    assert rule(record("a", callbacks={"last_checkpoint": LAST, "model_checkpoint": MONITORED})["config"]) == "last"
    assert rule(record("a", limit_val=0)["config"]) == "last"  # nothing validated: no best
    assert rule(None) == "unknown"


def test_a_row_says_the_step_of_each_seeds_checkpoint_and_a_meta_test_its_trainers():
    tested = rows_module().tested_checkpoint
    a = record("a", ckpt="/runs/a/checkpoints/step000700.ckpt")
    b = record("b", ckpt="/runs/b/checkpoints/step001000.ckpt")
    assert tested([a], [a]) == "best val/acc (step 700 of 1000)"
    assert tested([a, b], [a, b]) == "best val/acc (steps 700, 1000 of 1000)"
    assert tested([b, b], [b]) == "best val/acc (step 1000 of 1000, every seed)"
    assert tested([record("c", callbacks={}, ckpt=None)], []) == "last"
    meta = record("m", ckpt=a["ckpt_path"], overrides=("train=false", f"ckpt_path={a['ckpt_path']}"),
                  callbacks={})  # its own config is not what chose the checkpoint
    assert tested([meta], [a, meta]) == "best val/acc (step 700 of 1000)"
    assert tested([meta], [meta]) == "given"


def test_a_meta_test_of_another_file_of_the_run_says_which_file_it_loaded():
    tested = rows_module().tested_checkpoint
    a = record("a", ckpt="/runs/a/checkpoints/step000700.ckpt")
    for name, says in (("last.ckpt", "last (step 1000 of 1000)"), ("step000300.ckpt", "step 300 of 1000")):
        ckpt = f"/runs/a/checkpoints/{name}"
        meta = record("m", ckpt=ckpt, overrides=("train=false", f"ckpt_path={ckpt}"), callbacks={})
        assert tested([meta], [a, meta]) == says


def test_the_tables_have_the_column():
    tables = _tables_module()
    header, _, *rows = tables.main_table(tables.rows_by_benchmark(tables.from_records()))
    assert header.split(" | ")[5] == "tested checkpoint"
    # every shipped run tests its best on validation; the no-meta-training baseline its model as built
    assert rows and all(r.split(" | ")[5].startswith("best val/") for r in rows if "| pretrained |" not in r)
    assert all(r.split(" | ")[5] == "none: the model as built" for r in rows if "| pretrained |" in r)
    a = record("a", ckpt="/runs/a/checkpoints/step000700.ckpt", results=(
        {"group": "omniglot", "metric": "acc", "value": 0.9, "ci95": 0.01, "episodes": 10, "shots": 1,
         "queries": 15},))
    (row,) = tables.rows_by_benchmark([a])["omniglot"]
    header, _, line = tables.kind_table([row], row.kind)
    column = header.split(" | ").index("tested checkpoint")
    assert line.split(" | ")[column] == "best val/acc (step 700 of 1000)"


def test_per_step_scores_of_a_runs_groups_are_rows_of_their_own():
    """A run with algorithm.eval_score_steps scores each group at its K: one row per group, K
    naming the group where it is not experiments/sinusoid.py's `K=<shots>`."""
    tables = _tables_module()

    def result(group, metric, value, shots=1):
        return {"group": group, "metric": metric, "value": value, "ci95": 0.01, "episodes": 10,
                "shots": shots, "queries": 15}

    a = record("a", ckpt="/runs/a/checkpoints/step000700.ckpt", results=(
        result("x", "acc@0", 0.2), result("x", "acc@1", 0.5), result("y", "acc@0", 0.3),
        result("y", "acc@1", 0.6), result("K=5", "acc@1", 0.7, shots=5)))
    lines = tables.steps_table([a]).splitlines()
    assert lines[0].endswith("| ACC after 1 step | tested checkpoint | record |")
    assert [line.split(" | ")[1:5] for line in lines[2:]] == [
        ["1 (x)", "0.4", "1,000 × ?", "20.0 ± 1.0"], ["1 (y)", "0.4", "1,000 × ?", "30.0 ± 1.0"],
        ["5", "0.4", "1,000 × ?", "—"]]
    assert all("best val/acc (step 700 of 1000)" in line for line in lines[2:])


def test_one_experiment_at_two_budgets_is_two_row_groups():
    """The sinusoid runs at the paper's budget stand beside the shorter runs of the same
    experiment, each row naming its meta-training (steps x tasks per step)."""
    tables = _tables_module()
    rows = ({"group": "K=10", "metric": "mse@1", "value": 0.9, "ci95": 0.1, "episodes": 100, "shots": 10,
             "queries": 100},)
    short, long = record("s", results=rows), record("l", results=rows)
    short["config"]["data"] = {"meta_batch_size": 10}
    long["config"]["data"] = {"meta_batch_size": 25}
    long["config"]["trainer"]["max_steps"] = 70000
    lines = tables.steps_table([short, long]).splitlines()
    assert lines[0].startswith("| experiment | K | inner step | meta-training (steps × tasks) |")
    assert [(line.split(" | ")[3], line.split(" | ")[-1]) for line in lines[2:]] == [
        ("1,000 × 10", "s |"), ("70,000 × 25", "l |")]


def test_a_run_that_trains_nothing_says_it_tested_the_model_as_built():
    """pretrained_* sets `train: false` in its config (not as an override) and loads no checkpoint."""
    tested = rows_module().tested_checkpoint
    baseline = record("p", ckpt=None)
    baseline["config"].update(train=False, ckpt_path=None)
    assert tested([baseline], [baseline]) == "none: the model as built"


def resumed_pair() -> tuple[dict, dict]:
    """A 150-step run and a run that restored its last.ckpt and trained on to 300 steps."""
    parent = record("p", ckpt="/runs/p/checkpoints/step000125.ckpt")
    parent["config"]["trainer"]["max_steps"] = 150
    child = record("c", ckpt="/runs/p/checkpoints/step000125.ckpt",
                   overrides=("trainer.max_steps=300", "ckpt_path=/runs/p/checkpoints/last.ckpt"))
    child["config"]["trainer"]["max_steps"] = 300
    child["config"]["ckpt_path"] = "/runs/p/checkpoints/last.ckpt"
    return parent, child


def test_a_training_run_that_restored_a_checkpoint_continues_the_run_that_saved_it():
    rows = rows_module()
    parent, child = resumed_pair()
    assert rows.resumed_from(child, [parent, child]) is parent
    assert rows.resumed_at(child, parent) == 150  # last.ckpt: where the parent ended
    assert rows.resumed_from(parent, [parent, child]) is None
    meta = record("m", ckpt="/runs/p/checkpoints/last.ckpt",
                  overrides=("train=false", "ckpt_path=/runs/p/checkpoints/last.ckpt"))
    meta["config"]["ckpt_path"] = "/runs/p/checkpoints/last.ckpt"
    assert rows.resumed_from(meta, [parent, meta]) is None  # a meta-test, not a continuation
    stepped = dict(child, config={**child["config"], "ckpt_path": "/runs/p/checkpoints/step000100.ckpt"})
    assert rows.resumed_at(stepped, parent) == 100


def test_a_resumed_run_is_a_variant_row_that_names_the_run_it_continued():
    """Not a meta-test of the parent's checkpoint: it trained. The row says what it changed
    (its budget), without the local checkpoint path, and which run it continued from where."""
    rows = rows_module()
    parent, child = resumed_pair()
    for r in (parent, child):
        r["test_results"] = [{"group": "g", "metric": "acc", "value": 0.8, "ci95": 0.1, "episodes": 10,
                              "shots": 1, "queries": 5}]
    kind, label, checkpoint = rows.placed(child, [parent, child])
    assert (kind, checkpoint) == ("variant", "")
    assert "ckpt_path" not in label and "trainer.max_steps=300" in label
    found = [r for r in rows.rows_by_benchmark([parent, child])["omniglot"] if r.attempts[0] is child
             or r.attempts[0]["id"] == child["id"]]
    assert [r.note for r in found] == [" (resumed from step 150 of p)"]
    assert found[0].tested == "best val/acc (step 125 of 300)"
    other_parent, other_child = resumed_pair()
    for r, rid in ((other_parent, "q"), (other_child, "d")):
        r.update(id=rid * 8, cite=rid, output_dir=f"/runs/{rid}")
        r["config"]["seed"] = 2
    other_child["config"]["ckpt_path"] = "/runs/q/checkpoints/last.ckpt"
    both = rows.resumed_note([child, other_child], [parent, child, other_parent, other_child])
    assert both == " (resumed from step 150 of p, q)"  # one row, a seed each


def test_a_meta_tests_settings_leave_out_what_only_training_reads():
    settings = rows_module().settings_against
    trained = record("a", ckpt="/runs/a/checkpoints/step000700.ckpt")
    meta = record("m", overrides=("train=false", f"ckpt_path={trained['ckpt_path']}"))
    meta["config"]["algorithm"].update(eval_inner_lr=0.02, optimizer={"lr": 0.0005}, scheduler=None)
    trained["config"]["algorithm"].update(optimizer={"lr": 0.0001}, scheduler={"final_fraction": 0.1})
    meta["config"]["data"] = {"steps_per_epoch": 75, "meta_batch_size": 4, "max_length": 256}
    trained["config"]["data"] = {"steps_per_epoch": 25, "meta_batch_size": 8, "max_length": 128}
    # the outer optimizer, its schedule and the meta-training sampler never run in a meta-test
    assert settings(meta, trained) == "algorithm.eval_inner_lr=0.02, data.max_length=256"
