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
from metalearn.train import train
from tests.conftest import ROOT, compose_config


@pytest.fixture
def two_attempts(make_cfg, tmp_path):
    """A debug=fast meta-training run (K=5) and a meta-test-only attempt at K=3."""
    train(make_cfg("trainer.max_steps=2", "trainer.limit_val_batches=4", "data.test_episodes=1",
                   out="a"))
    train(make_cfg("train=false", "data.shots=3", "data.test_episodes=1", out="b"))
    return tmp_path / "logs"


def test_tables_and_notebook_read_the_registry_and_logs(two_attempts, monkeypatch):
    url = f"sqlite:///{two_attempts}/registry.db"
    out = subprocess.run([sys.executable, str(ROOT / "experiments" / "tables.py"), "--url", url,
                          "--debug"], capture_output=True, text=True, check=True).stdout
    assert "### amazon" in out
    assert "`experiment=reptile_amazon debug=fast train=false data.shots=3" in out
    assert out.count("| `experiment=reptile_amazon") == 2
    assert "Published: none" in out  # the published figures stand beside each table

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
    train(cfg)
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
    spec = importlib.util.spec_from_file_location("tables", ROOT / "experiments" / "tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_checkpoint_path_is_shown_as_typed_from_the_project_root():
    """Under the run's project root: relative to it; under a log_dir elsewhere: under logs/,
    where the default log_dir puts it; anywhere else: as given."""
    tables = _tables_module()
    assert tables.shown("ckpt_path=/p/logs/r/a.ckpt", "/p", "/p/logs") == "ckpt_path=logs/r/a.ckpt"
    assert tables.shown("ckpt_path=/runs/r/a.ckpt", "/p", "/runs") == "ckpt_path=logs/r/a.ckpt"
    assert tables.shown("ckpt_path=/other/a.ckpt", "/p", "/runs") == "ckpt_path=/other/a.ckpt"
    assert tables.shown("train=False", "/p") == "train=false"


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
    (row,) = [line for line in tables.summary(records).splitlines() if line.startswith("| amazon")]
    assert "`experiment=reptile_amazon algorithm.inner_lr=0.1`" in row and "75.0" in row
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
    # the GPU wall times cite their own records (experiments/gpu/table.py; tests/test_bench.py)
    cited |= {p.stem.rsplit("-", 1)[-1] for p in (ROOT / "experiments/gpu/records").glob("*.json")}
    for line in committed.splitlines():  # every table row cites records, and only these
        if line.startswith("| `experiment=") or line.startswith("| `"):
            assert any(c in line for c in cited), line


def test_the_readme_summary_takes_only_commands_that_still_run_what_was_recorded():
    """A run of earlier defaults scoring higher stays a row of experiments/README.md: its
    command would now run something else, so it is not the command the top README offers."""
    tables = _tables_module()
    record = json.loads((ROOT / "experiments" / "records" / "fomaml_amazon"
                         / "20261130T175057-657fbf70.json").read_text(encoding="utf-8"))
    today, earlier = {**record, "cite": None}, json.loads(json.dumps({**record, "cite": None}))
    earlier["id"] = "e" * 8 + earlier["id"][8:]
    earlier["config"]["algorithm"]["optimizer"]["lr"] = 0.01
    for r, value in ((today, 0.7), (earlier, 0.9)):
        for t in r["test_results"]:
            t["value"] = value
        r["metrics"]["test/acc"] = {**r["metrics"]["test/acc"], "last": value}
    (row,) = [line for line in tables.summary([today, earlier]).splitlines()
              if line.startswith("| amazon")]
    assert "70.0" in row and "earlier defaults" not in row
    assert "90.0" in tables.tables([today, earlier])  # still a row of its own
    (row,) = [line for line in tables.summary([earlier]).splitlines() if line.startswith("| amazon")]
    assert "90.0" in row and "earlier defaults" in row  # the only run there is: shown, labelled
