"""The results tooling on real attempts: the table script and the notebook, top to bottom."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import nbformat
import pytest
from nbclient import NotebookClient

from metalearn.registry import Store
from metalearn.registry.report import benchmark
from tests.conftest import ROOT, compose_config, train_job


@pytest.fixture
def two_attempts(make_cfg, tmp_path):
    """A debug=fast meta-training run (K=5) and a meta-test-only attempt at K=3."""
    train_job(make_cfg("trainer.max_steps=2", "trainer.limit_val_batches=4", "data.test_episodes=1",
                       out="a"))
    train_job(make_cfg("train=false", "data.shots=3", "data.test_episodes=1", out="b"))
    return tmp_path / "logs"


def test_tables_and_notebook_read_the_registry_and_logs(two_attempts, monkeypatch):
    url = f"sqlite:///{two_attempts}/registry.db"
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "tables.py"), "--url", url,
                          "--debug"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("| benchmark | algorithm | command | score |") and "### amazon" in out
    # trainer overrides: a variant; train=false without a checkpoint: a meta-test of the model as built
    assert ("| `reptile_amazon` | `debug=fast trainer.max_steps=2 trainer.limit_val_batches=4 "
            "data.test_episodes=1` |") in out
    assert "| `reptile_amazon` | none (the model as built) | `debug=fast data.shots=3 data.test_episodes=1` |" in out
    assert out.count("| `reptile_amazon` |") == 2
    assert "- amazon: none" in out  # the published figures stand beside the table

    monkeypatch.setenv("METALEARN_REGISTRY_URL", url)
    monkeypatch.setenv("METALEARN_LOG_DIR", str(two_attempts))
    monkeypatch.setenv("METALEARN_FIGURE_DIR", str(two_attempts / "figures"))
    nb = nbformat.read(ROOT / "notebooks" / "results.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(two_attempts)}}).execute()
    outputs = {i: "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                          for o in c.get("outputs", []))
               for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    text = "\n".join(outputs.values())
    assert "2 completed attempts" in text
    assert "'reptile_amazon': {3:" in text and "5:" in text  # accuracy against K, per experiment
    assert "reptile_amazon/attempt-1_" in text  # a val/acc curve from TensorBoard, found by the registry
    assert (two_attempts / "figures" / "accuracy_vs_k.png").stat().st_size > 10_000


def test_the_readme_figure_is_drawn_from_the_committed_records(tmp_path):
    """experiments/figures.py: the records into a registry, the notebook over it, the PNG out."""
    subprocess.run([sys.executable, str(ROOT / "experiments" / "figures.py"), "--out", str(tmp_path)],
                   capture_output=True, text=True, check=True)
    assert (tmp_path / "accuracy_vs_k.png").stat().st_size > 10_000


def test_variants_join_their_benchmarks_table():
    assert benchmark("reptile_omniglot_lake") == "omniglot"
    assert benchmark("protonet_arsc") == "arsc"
    assert benchmark("reptile_sinusoid") == "sinusoid"  # unknown: its last part


@pytest.mark.slow
def test_the_sinusoid_script_scores_trained_attempts_and_draws_them(tmp_path):
    """A two-step maml_sinusoid attempt, then experiments/sinusoid.py on its registry."""
    cfg = compose_config(["experiment=maml_sinusoid", "trainer.max_steps=2",
                          "data.steps_per_epoch=2", "data.val_episodes=2", "data.test_episodes=2",
                          f"paths.log_dir={tmp_path}", "callbacks.rich_progress_bar=null",
                          "logger=csv"], tmp_path / "run")
    train_job(cfg)
    figure = tmp_path / "sinusoid.png"
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "sinusoid.py"), "--url",
                          f"sqlite:///{tmp_path}/registry.db", "--figure", str(figure),
                          "--tasks", "4"], capture_output=True, text=True, check=True).stdout
    rows = [line for line in out.splitlines() if line.startswith("| `maml_sinusoid`")]
    assert [r.split(" | ")[1] for r in rows] == ["5", "10", "20"]
    assert all(r.count(" ± ") == 3 for r in rows)  # after 0, 1 and 10 steps
    assert figure.stat().st_size > 10_000
    results = Store(f"sqlite:///{tmp_path}/registry.db").test_results(1)  # recorded for export
    assert {(r["group"], r["metric"]) for r in results} >= {
        (f"K={k}", f"mse@{s}") for k in (5, 10, 20) for s in (0, 1, 10)}
    assert {r["episodes"] for r in results if "@" in r["metric"]} == {4}


def _tables_module():
    """experiments/tables.py as a module, with its sibling result_rows.py importable."""
    if str(ROOT / "experiments") not in sys.path:
        sys.path.insert(0, str(ROOT / "experiments"))
    spec = importlib.util.spec_from_file_location("tables", ROOT / "experiments" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_checkpoint_path_is_shown_as_typed_from_the_project_root():
    """Under the run's project root: relative to it; under a log_dir elsewhere: under logs/,
    where the default log_dir puts it; anywhere else: as given."""
    _tables_module()
    shown = sys.modules["result_rows"].shown
    assert shown("ckpt_path=/p/logs/r/a.ckpt", "/p", "/p/logs") == "ckpt_path=logs/r/a.ckpt"
    assert shown("ckpt_path=/runs/r/a.ckpt", "/p", "/runs") == "ckpt_path=logs/r/a.ckpt"
    assert shown("ckpt_path=/other/a.ckpt", "/p", "/runs") == "ckpt_path=/other/a.ckpt"
    assert shown("train=False", "/p") == "train=false"


def test_the_readme_summary_takes_only_runs_of_the_benchmarks_own_protocol():
    """A meta-test of a checkpoint at K = 10 scores higher than the K = 5 protocol: it is a row of
    experiments/README.md, never the benchmark's best in the top README."""
    tables = _tables_module()

    def record(overrides, value, cite):
        return {"id": cite * 8, "cite": cite, "experiment": "reptile_amazon", "status": "completed",
                "overrides": ["experiment=reptile_amazon", *overrides], "hardware": {},
                "config": {"objective": {"metric": "acc", "mode": "max"}}, "started_at": None,
                "ended_at": None, "metrics": {},
                "test_results": [{"group": "automotive", "metric": "acc", "value": value,
                                  "ci95": 0.05, "episodes": 30, "shots": 5, "queries": 5}]}

    records = [record([], 0.70, "a"), record(["train=false", "ckpt_path=x.ckpt", "data.shots=10"], 0.80, "b"),
               record(["algorithm.inner_lr=0.1"], 0.75, "c")]
    assert tables.own_protocol(("algorithm.inner_lr=0.1",)) and not tables.own_protocol(("data.shots=10",))
    assert not tables.own_protocol(("benchmark=amazon_shuffled",))  # another protocol on the same files
    (row,) = [line for line in tables.summary(records).splitlines() if line.startswith("| amazon")]
    assert "`metalearn train experiment=reptile_amazon algorithm.inner_lr=0.1`" in row and "75.0" in row
    assert "80.0" in tables.tables(records)  # still a row of its own


def test_the_committed_results_tables_are_made_from_the_committed_records():
    """A fresh clone regenerates experiments/README.md (and the top README's summary, where it
    has one) byte for byte from experiments/records/: run `python experiments/tables.py
    --write` after exporting records or changing the tables."""
    tables = _tables_module()
    records = tables.from_records()
    committed = tables.README.read_text(encoding="utf-8")
    assert tables.readme(committed, records) == committed
    top = tables.TOP_README.read_text(encoding="utf-8")
    assert tables.top_readme(top, records) == top
    cited = {r["cite"] for r in records}
    generated = "".join(committed.split(begin, 1)[1].split(end, 1)[0]
                        for begin, end in tables.BLOCKS.values())
    rows = [line for line in generated.splitlines() if line.startswith("| ")
            and not line.endswith(("| records |", "| record |"))]
    assert len(rows) > 40
    for line in rows:  # every generated row cites records, and only these
        assert any(c in line.rsplit(" | ", 1)[-1] for c in cited), line


def test_the_readme_summary_takes_only_commands_that_run_what_was_recorded():
    """A run of values the configs do not compose, scoring higher, stays a row of
    experiments/README.md: its command runs something else, so the top README does not offer it."""
    tables = _tables_module()
    record = json.loads((ROOT / "experiments" / "records" / "fomaml_amazon"
                         / "20261130T175057-657fbf70.json").read_text(encoding="utf-8"))
    configured, drifted = {**record, "cite": None}, json.loads(json.dumps({**record, "cite": None}))
    drifted["id"] = "e" * 8 + drifted["id"][8:]
    drifted["config"]["algorithm"]["optimizer"]["lr"] = 0.01
    for r, value in ((configured, 0.7), (drifted, 0.9)):
        for t in r["test_results"]:
            t["value"] = value
        r["metrics"]["test/acc"] = {**r["metrics"]["test/acc"], "last": value}
    (row,) = [line for line in tables.summary([configured, drifted]).splitlines()
              if line.startswith("| amazon")]
    assert "70.0" in row and "ran with" not in row
    assert "90.0" in tables.tables([configured, drifted])  # still a row of its own
    (row,) = [line for line in tables.summary([drifted]).splitlines() if line.startswith("| amazon")]
    assert "90.0" in row and "ran with algorithm.optimizer=Adam(lr=0.01)" in row  # the only run: labelled


def test_the_committed_records_sort_into_the_default_variants_and_meta_tests():
    """The default row of an experiment holds the runs whose config it composes, one per seed; a
    variant shows the fewest overrides that compose what it ran, whatever was typed; a meta-test
    names the record that trained its checkpoint and only the settings that differ from that run's."""
    tables = _tables_module()
    rows = {a["id"][:8]: r for bench in tables.rows_by_benchmark(tables.from_records()).values()
            for r in bench for a in r.attempts}
    assert rows["04c24234"].kind == "default"  # typed `algorithm=reptile_adam algorithm.train_on_query=true`
    default = rows["35d824db"]
    assert default.kind == "default" and {a["id"][:8] for a in default.attempts} == {"35d824db", "1b9d086e", "8b98c6c2"}
    assert (rows["1c923fde"].kind, rows["1c923fde"].label, rows["1c923fde"].note) == ("variant", "", " (seed 42 again)")
    # seed 42 typed `algorithm.train_on_query=true` (its config holds reptile_adam's own values),
    # seed 1 typed `algorithm=reptile_adam data.meta_batch_size=4`: one configuration, two seeds
    assert rows["9b3012b7"] is rows["cd20d592"]
    assert rows["9b3012b7"].label == "algorithm=reptile_adam data.meta_batch_size=4"
    assert rows["5befd267"].label == "algorithm=reptile data.meta_batch_size=4"
    assert rows["877514da"].label == "algorithm=reptile_adam_amazon data.meta_batch_size=8"
    assert rows["05683f11"].kind == "meta-test" and rows["05683f11"].label == "data.shots=1"
    assert "5befd267" in rows["05683f11"].checkpoint
    assert rows["d2aedc00"].label == "algorithm.eval_adapt_check=true" and "9294917e" in rows["d2aedc00"].checkpoint
    assert "9b3012b7" in rows["659b1d90"].checkpoint  # not a85054d5, a meta-test in the same output folder
    assert tables.short_values("x=0.13567896067557864 y=0.05 z=3") == "x=0.1357 y=0.05 z=3"
