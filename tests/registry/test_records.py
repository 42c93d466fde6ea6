"""Records: export finished attempts to files, import them into another registry, and back."""
from __future__ import annotations

import gzip
import json
import math
import time
from pathlib import Path

import pytest

from metalearn.cli import main
from metalearn.registry import RegistryError, Store, records, schema
from metalearn.registry.errors import RecordError


def _attempt(store: Store, experiment: str, seed: int, parent: int | None = None) -> int:
    attempt = store.create_attempt(
        name=experiment, experiment=experiment, algorithm="maml", parent_id=parent,
        config={"seed": seed, "trainer": {"accelerator": "cpu", "devices": 1},
                "objective": {"metric": "mse", "mode": "min"}, "nested": {"b": 1, "a": [1, 2]}},
        overrides=[f"experiment={experiment}", f"seed={seed}"], command=["run.py"],
        tags=["sinusoid"], host="box", pid=1000 + seed, git_commit="ab" * 20 + "-dirty",
        output_dir="/x/out", log_name=f"{experiment}/attempt-1")
    now = time.time()
    store.add_metrics(attempt, [{"name": "train/loss", "step": s, "value": 1 / (s + 1) + seed,
                                 "time": now + s / 3} for s in range(50)])
    store.add_metrics(attempt, [{"name": "val/mse", "step": 10, "value": math.nan, "time": now},
                                {"name": "test/mse", "step": 50, "value": 0.1 * seed, "time": now}])
    store.put_test_results(attempt, [
        {"group": "sinusoid", "metric": "mse", "value": 0.1 * seed, "ci95": 0.01, "episodes": 100,
         "shots": 10, "queries": 100},
        {"group": "K=5", "metric": "mse@1", "value": 1 / 3, "ci95": math.nan, "episodes": 100,
         "shots": 5, "queries": 100}])
    store.set_status(attempt, schema.COMPLETED)
    return attempt


@pytest.fixture
def source(tmp_path: Path) -> str:
    """A registry with two finished attempts (the second a child of the first) and a running one."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    store = Store(url)
    first = _attempt(store, "maml_sinusoid", 1)
    _attempt(store, "maml_sinusoid", 2, parent=first)
    store.create_attempt(name="busy", experiment="maml_sinusoid", host="box", pid=7)
    store.close()
    return url


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_export_import_export_gives_the_same_files_and_importing_twice_adds_nothing(
        source: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    assert main(["runs", "export", "1", "2", "--out", str(first), "--url", source]) == 0
    written = _files(first)
    assert len(written) == 4  # a JSON record and its gzipped rows for each attempt
    record = json.loads(next(v for k, v in written.items() if k.endswith(".json")))
    assert list(record)[:4] == ["format", "id", "experiment", "name"]
    assert record["git_commit"] == "ab" * 20 and record["git_dirty"] is True
    assert record["hardware"] == {"host": "box", "accelerator": "cpu", "devices": 1,
                                  "precision": None}
    assert record["metrics"]["train/loss"]["count"] == 50
    assert record["metrics"]["val/mse"] == {"count": 1, "last_step": 10, "last": None,
                                            "min": None, "max": None}
    assert {(r["group"], r["metric"]) for r in record["test_results"]} == {("sinusoid", "mse"),
                                                                           ("K=5", "mse@1")}

    target = f"sqlite:///{tmp_path / 'b.db'}"
    capsys.readouterr()
    assert main(["runs", "import", str(first), "--url", target]) == 0
    assert capsys.readouterr().out.count("added attempt") == 2
    assert main(["runs", "import", str(first), "--url", target]) == 0  # again: nothing new
    assert capsys.readouterr().out.count("updated attempt") == 2
    store = Store(target)
    assert len(store.list_attempts()) == 2
    assert len(store.metrics(1)) == 52 and len(store.test_results(1)) == 2
    assert store.get_attempt(2)["parent_id"] == 1
    assert store.metrics(1, name="val/mse")[0]["value"] is None  # NaN stays NaN (stored as NULL)

    assert main(["runs", "export", "1", "2", "--out", str(second), "--url", target]) == 0
    assert _files(second) == written
    assert main(["runs", "export", "1", "--out", str(second), "--url", target]) == 0
    assert "unchanged" in capsys.readouterr().out


def test_export_by_experiment_leaves_unfinished_attempts_and_refuses_them_by_id(
        source: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["runs", "export", "--experiment", "maml_sinusoid", "--out", str(tmp_path / "r"),
                 "--url", source]) == 0
    assert len(list((tmp_path / "r" / "maml_sinusoid").glob("*.json"))) == 2
    assert main(["runs", "export", "3", "--out", str(tmp_path / "r"), "--url", source]) == 1
    assert "attempt 3 is running: export it once it has finished" in capsys.readouterr().err
    assert main(["runs", "export", "--url", source]) == 1
    assert "name the attempts to export" in capsys.readouterr().err


def _exported(source: str, folder: Path) -> list[Path]:
    records.export(Store(source), [1, 2], folder)
    return sorted(folder.rglob("*.json"))


@pytest.mark.parametrize("edit, message", [
    (lambda r: r.pop("status"), "status: missing"),
    (lambda r: r.update(status="done"), "status: must be one of completed"),
    (lambda r: r.update(created_at="yesterday"), "created_at: must be a UTC time"),
    (lambda r: r.update(host="other"), "id: "),  # the identity no longer matches the id
    (lambda r: r["test_results"][0].update(episodes="many"), "test_results[0].episodes"),
    (lambda r: r.update(colour="red"), "colour: not a record key"),
    (lambda r: r.update(format=99), "format: 99 is newer than this metalearn reads"),
    (lambda r: r["metric_rows"].update(file="../x.metrics.csv.gz"), "metric_rows.file"),
    (lambda r: r["metrics"]["train/loss"].update(count=3), "metrics: the summaries do not match"),
])
def test_a_bad_record_is_refused_by_file_and_key_before_anything_is_written(
        source: str, tmp_path: Path, capsys: pytest.CaptureFixture, edit, message: str) -> None:
    good, bad = _exported(source, tmp_path / "r")
    record = json.loads(bad.read_text())
    edit(record)
    bad.write_text(json.dumps(record))
    target = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["runs", "import", str(good), str(bad), "--url", target]) == 1
    err = capsys.readouterr().err.replace("\n", "")
    assert str(bad.name) in err and message in err, err
    assert Store(target).list_attempts() == []


def test_bad_metric_rows_are_named_by_file_and_line(source: str, tmp_path: Path) -> None:
    path = _exported(source, tmp_path / "r")[0]
    rows = path.with_name(path.name.removesuffix(".json") + records.ROWS_SUFFIX)
    lines = gzip.decompress(rows.read_bytes()).decode().splitlines()
    lines[3] = "train/loss,three,0.5,1.0"
    rows.write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(RecordError, match=rf"{rows.name}: line 4: expected name,step,value,time"):
        records.import_records(Store(f"sqlite:///{tmp_path / 'b.db'}"), [path])
    path.write_text("{not json")
    with pytest.raises(RecordError, match=rf"{path.name}: not JSON"):
        records.load(path)


def test_rows_over_the_size_limit_leave_the_summaries_and_import_as_final_values(
        source: str, tmp_path: Path) -> None:
    done = records.export(Store(source), [1], tmp_path / "r", max_rows_bytes=100)
    path = done[0][0]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no rows file
    record = json.loads(path.read_text())
    assert record["metric_rows"] == {"file": None, "rows": 52}
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    records.import_records(store, [path])
    records.import_records(store, [path])
    assert store.final_values("test/mse") == {1: 0.1}
    assert store.metric_summary(1)["train/loss"]["last_step"] == 49
    assert len(store.metrics(1)) == 3  # each metric's last value, once


def test_a_record_with_study_columns_reads_here(source: str, tmp_path: Path) -> None:
    path = _exported(source, tmp_path / "r")[0]
    record = json.loads(path.read_text())
    record.update(study="sweep-1", trial=4)
    path.write_text(json.dumps(record))
    assert records.load(path).record["trial"] == 4
    store = Store(f"sqlite:///{tmp_path / 'b.db'}")
    records.import_records(store, [path])  # kept where the registry has the columns
    assert len(store.list_attempts()) == 1


def test_records_refuse_duplicate_ids(source: str, tmp_path: Path) -> None:
    path = _exported(source, tmp_path / "r")[0]
    copy = tmp_path / "copy.json"
    copy.write_bytes(path.read_bytes())
    with pytest.raises(RegistryError, match="copy.json: id: .* is also the id of"):
        records.load_all([tmp_path / "r", copy])
