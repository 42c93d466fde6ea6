"""experiments/arsc_runs.py: one row per ARSC meta-training run, from its record files."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from tests.test_result_checkpoints import record
from tests.test_results import _tables_module


def write(folder: Path, rid: str, *, overrides: tuple = (), test: float, vals: dict[int, float],
          layers: int | str = 1) -> None:
    r = record(rid, ckpt=f"/runs/{rid}/checkpoints/step000150.ckpt", overrides=overrides)
    r["id"] = rid * 16
    r["experiment"], r["overrides"] = "fomaml_arsc", ["experiment=fomaml_arsc", *overrides]
    r["config"]["trainer"]["max_steps"] = 150
    r["config"].update(data={"meta_batch_size": 4}, model={"trainable_layers": layers})
    r["metrics"] = {"test/acc": {"last": test}, "test/acc_ci95": {"last": 0.05}}
    r["started_at"], r["ended_at"] = "2026-01-01T00:00:00Z", "2026-01-01T00:30:00Z"
    (folder / "fomaml_arsc").mkdir(parents=True, exist_ok=True)
    (folder / "fomaml_arsc" / f"{rid}.json").write_text(json.dumps(r))
    (folder / "fomaml_arsc" / f"{rid}.rows").write_text(json.dumps(
        [{"name": "val/acc", "step": s - 1, "value": v} for s, v in vals.items()]))


def reading_written(monkeypatch):
    """arsc_runs, reading the records `write` leaves (the records module checks a real record's
    every field) and keying cells by the overrides as given."""
    _tables_module()
    runs = sys.modules["arsc_runs"]
    loaded = {}

    def load(path, with_rows=False):
        r = json.loads(path.read_text())
        rows = json.loads(path.with_suffix(".rows").read_text())
        return loaded.setdefault(path, runs.rec.Loaded(r, path, rows))

    monkeypatch.setattr(runs.rec, "load", load)
    monkeypatch.setattr(runs, "cell_key", lambda r: (r["experiment"], tuple(r["overrides"][1:])))
    return runs


def test_rows_are_best_meta_test_first_with_the_best_validation_step(tmp_path, monkeypatch):
    runs = reading_written(monkeypatch)
    write(tmp_path, "a", test=0.80, vals={75: 0.78, 150: 0.79})
    write(tmp_path, "b", overrides=("model.trainable_layers=3",), test=0.84, vals={25: 0.7, 50: 0.81, 75: 0.8},
          layers=3)
    lines = runs.table(tmp_path).splitlines()[2:]
    cells = [[c.strip() for c in line.split("|")[2:10]] for line in lines]
    assert cells == [["`model.trainable_layers=3`", "1", "150 x 4", "3", "81.0 (50)", "84.0 ± 5.0", "—", "30"],
                     ["as configured", "1", "150 x 4", "1", "79.0 (150)", "80.0 ± 5.0", "—", "30"]]


def test_each_run_is_compared_task_by_task_with_the_configured_run_of_its_seed(tmp_path, monkeypatch):
    _tables_module()
    runs = sys.modules["arsc_runs"]
    tasks = ("books/t2", "books/t4", "dvd/t5")

    def scored(values, seed):
        return {"experiment": "fomaml_arsc", "overrides": ["experiment=fomaml_arsc"], "config": {"seed": seed},
                "test_results": [{"group": g, "metric": "acc", "value": v} for g, v in zip(tasks, values, strict=True)]
                + [{"group": g, "metric": "acc@0", "value": 0.5} for g in tasks]}

    monkeypatch.setattr(runs, "cell_key", lambda r: (r["experiment"], tuple(r["overrides"][1:])))
    base42, base1 = scored((0.8, 0.9, 0.7), 42), scored((0.7, 0.7, 0.7), 1)
    lever = scored((0.82, 0.93, 0.71), 42)
    lever["overrides"] = ["experiment=fomaml_arsc", "model.trainable_layers=all"]
    gain, ci = runs.against_configured(lever, [base1, base42, lever])
    diffs = [2.0, 3.0, 1.0]  # points, task by task against the seed-42 run (not the seed-1 one)
    assert gain == sum(diffs) / 3
    assert abs(ci - 4.303 * 1.0 / 3 ** 0.5) < 1e-9  # t(0.975, 2 df) * s / sqrt(n), s = 1
    assert runs.against_configured(base42, [base1, base42, lever]) is None  # the reference itself
    other = scored((0.8, 0.9, 0.7), 7)
    other["overrides"] = lever["overrides"]
    assert runs.against_configured(other, [base1, base42, other]) is None  # no configured run of seed 7


def test_a_legend_tells_runs_of_one_shape_apart_by_inner_step_and_seed():
    _tables_module()
    runs = sys.modules["arsc_runs"]

    def run(rid, seed, inner):
        return {"id": rid * 8, "experiment": "fomaml_arsc",
                "config": {"seed": seed, "algorithm": {"inner_lr": inner}, "model": {"trainable_layers": "all"},
                           "data": {"meta_batch_size": 4}, "trainer": {"max_steps": 150}}}

    names = {runs.in_words(run("a", 42, 0.005)), runs.in_words(run("b", 1, 0.005)), runs.in_words(run("c", 42, 0.01))}
    assert len(names) == 3
    assert runs.in_words(run("a", 42, 0.005)) == ("first-order MAML, whole encoder, inner step 0.005, 4 tasks x 150 "
                                                  "steps, seed 42 [aaaaaaaa]")
    # reviews cut at another length than the benchmark's 128 word pieces: said, as a run
    # recorded without the key is not
    longer = run("d", 42, 0.005)
    longer["config"]["data"]["max_length"] = 256
    assert runs.in_words(longer) == ("first-order MAML, whole encoder, inner step 0.005, 256 word pieces, "
                                     "4 tasks x 150 steps, seed 42 [dddddddd]")
    same = run("e", 42, 0.005)
    same["config"]["data"]["max_length"] = 128
    assert "word pieces" not in runs.in_words(same)


def test_a_resumed_run_draws_its_parents_curve_and_counts_its_wall_time(tmp_path, monkeypatch):
    """A run that restored another's last.ckpt and trained on: its row and legend say so, its
    validation curve starts with the parent's (the steps it did not run itself) and its wall
    time is both runs'."""
    runs = reading_written(monkeypatch)
    write(tmp_path, "a", test=0.80, vals={75: 0.78, 150: 0.79})
    write(tmp_path, "b", overrides=("trainer.max_steps=300", "ckpt_path=/runs/a/checkpoints/last.ckpt"),
          test=0.82, vals={225: 0.83, 300: 0.81})
    path = tmp_path / "fomaml_arsc" / "b.json"
    r = json.loads(path.read_text())
    r["config"]["trainer"]["max_steps"], r["config"]["ckpt_path"] = 300, "/runs/a/checkpoints/last.ckpt"
    r["output_dir"] = "/runs/b"
    path.write_text(json.dumps(r))
    lines = runs.table(tmp_path).splitlines()[2:]
    cells = [[c.strip() for c in line.split("|")[2:10]] for line in lines]
    assert cells[0] == ["`trainer.max_steps=300`, resumed from step 150 of aaaaaaaa", "1", "300 x 4", "1",
                        "83.0 (225)", "82.0 ± 5.0", "—", "60"]
    items = {i.record["id"][0]: i for i in runs.training_runs(tmp_path)}
    assert runs.full_curve(items["b"], list(items.values())) == {75: 78.0, 150: 79.0, 225: 83.0, 300: 81.0}
    assert runs.in_words(items["b"].record, [i.record for i in items.values()]).endswith(
        "4 tasks x 300 steps (150 of them in aaaaaaaa), seed 1 [bbbbbbbb]")
