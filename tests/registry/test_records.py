"""Records: export finished attempts to files, import them into another registry, and back."""
from __future__ import annotations

import gzip
import json
import math
import re
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


def _rows_file(path: Path) -> Path:
    return path.with_name(path.name.removesuffix(".json") + records.ROWS_SUFFIX)


def _big_step(record: dict, path: Path) -> None:
    """A metric row at step -2**70 (below the last step, so only the rows file shows it)."""
    rows = _rows_file(path)
    lines = gzip.decompress(rows.read_bytes()).decode().splitlines()
    lines.append(f"test/mse,{-2 ** 70},{record['metrics']['test/mse']['last']},1.0")
    rows.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    record["metric_rows"]["rows"] += 1
    record["metrics"]["test/mse"]["count"] += 1


def _big_summary_step(record: dict, path: Path) -> None:
    """A record without its rows whose summary says step 2**70."""
    _rows_file(path).unlink()
    record["metric_rows"]["file"] = None
    record["metrics"]["test/mse"]["last_step"] = 2 ** 70


@pytest.mark.parametrize("edit, message", [
    (lambda r, p: r.update(pid=2 ** 70), f"pid: {2 ** 70} is out of range (64-bit"),
    (lambda r, p: r.update(trial=10 ** 30), f"trial: {10 ** 30} is out of range (64-bit"),
    (_big_step, f"line 54: step {-2 ** 70} is out of range (64-bit"),
    (_big_summary_step, f"metrics['test/mse'].last_step: {2 ** 70} is out of range (64-bit"),
    (lambda r, p: r["test_results"][0].update(episodes=10 ** 30),
     f"test_results[0].episodes: {10 ** 30} is out of range (64-bit"),
    (lambda r, p: r["test_results"][0].update(value=10 ** 400),
     "test_results[0].value: a 401-digit integer is too large for a float"),
])
def test_numbers_out_of_the_registry_range_are_refused_by_file_and_key_before_any_write(
        source: str, tmp_path: Path, capsys: pytest.CaptureFixture, edit, message: str) -> None:
    good, bad = _exported(source, tmp_path / "r")
    record = json.loads(bad.read_text())
    edit(record, bad)
    record["id"] = records.record_id(record["host"], record["pid"],
                                     records.parse_time(record["created_at"]), record["name"])
    bad.write_text(json.dumps(record))
    target = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["runs", "import", str(good), str(bad), "--url", target]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert (bad.name in err or _rows_file(bad).name in err) and message in err, err
    store = Store(target)
    assert store.list_attempts() == []  # all or nothing: not even the good record
    assert store.metrics(1) == [] and store.test_results(1) == []


def test_a_number_too_long_to_read_names_the_file(source: str, tmp_path: Path) -> None:
    path = _exported(source, tmp_path / "r")[0]
    path.write_text(re.sub(r'"pid": \d+', '"pid": ' + "9" * 5000, path.read_text()))
    with pytest.raises(RecordError, match=rf"{path.name}: not JSON: .*digits"):
        records.load(path)


def test_metric_names_with_line_breaks_and_quotes_come_back(tmp_path: Path) -> None:
    rows = [{"name": name, "step": i, "value": 0.5, "time": 1.0}
            for i, name in enumerate(["a\rb", "x,y", 'q"t', "n\nl", "c\r\nd", "plain"])]
    path = tmp_path / ("x" + records.ROWS_SUFFIX)
    path.write_bytes(records.pack_rows(rows))
    assert records.unpack_rows(path) == rows
    assert b"plain,5,0.5,1.0\n" in gzip.decompress(path.read_bytes())  # other rows as before


def _bomb(path: Path, header: bytes, body: bytes, repeat: int) -> None:
    """A gzip file of header and body repeated, written without holding it expanded."""
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(header)
        for _ in range(repeat):
            fh.write(body)


def test_a_gzip_bomb_is_refused_by_name_without_filling_memory(source: str, tmp_path: Path) -> None:
    import tracemalloc

    path = _exported(source, tmp_path / "r")[0]
    rows = _rows_file(path)
    _bomb(rows, b"name,step,value,time\n", b"\0" * 2 ** 20, 50)  # 50 MiB of zeros
    assert rows.stat().st_size < 100_000
    tracemalloc.start()
    try:
        with pytest.raises(RecordError, match=rf"{rows.name}: expands to more than 16 MiB"):
            records.import_records(Store(f"sqlite:///{tmp_path / 'b.db'}"), [path])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2 ** 20, peak  # the text is read in chunks, never whole
    assert Store(f"sqlite:///{tmp_path / 'b.db'}").list_attempts() == []


def test_rows_past_the_declared_count_or_the_limit_are_refused_as_read(
        source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _exported(source, tmp_path / "r")[0]
    rows = _rows_file(path)
    _bomb(rows, b"name,step,value,time\n", b"".join(b"a,%d,,1\n" % i for i in range(1000)), 10)
    with pytest.raises(RecordError, match=rf"{rows.name}: line 54: more than 52 rows \(the count its record"):
        records.load(path, with_rows=True)
    monkeypatch.setattr(records, "MAX_METRIC_ROWS", 20)
    with pytest.raises(RecordError, match=rf"{rows.name}: line 22: more than 20 rows \(the most a rows file"):
        records.unpack_rows(rows)


def test_a_rows_file_with_a_huge_field_names_file_and_line(source: str, tmp_path: Path) -> None:
    path = _exported(source, tmp_path / "r")[0]
    rows = _rows_file(path)
    _bomb(rows, b"name,step,value,time\na,1,,1\n", b"x" * 2 ** 18, 1)
    with pytest.raises(RecordError, match=rf"{rows.name}: line 3: not CSV: field larger"):
        records.unpack_rows(rows)


@pytest.mark.parametrize("edit, key, message", [
    (lambda r: r.update(pid=2 ** 40), "pid", f"{2 ** 40} is out of range (32-bit"),
    (lambda r: r.update(algorithm="m" * 300), "algorithm", "300 characters are more than its 255"),
    (lambda r: r.update(error="bad\x00byte"), "error", "'bad\\x00byte' holds a NUL character"),
])
def test_a_record_is_checked_against_the_columns_of_the_registry_it_goes_to(
        source: str, pg_url: str, tmp_path: Path, edit, key: str, message: str) -> None:
    good, bad = _exported(source, tmp_path / "r")
    record = json.loads(bad.read_text())
    edit(record)
    record["id"] = records.record_id(record["host"], record["pid"],
                                     records.parse_time(record["created_at"]), record["name"])
    bad.write_text(json.dumps(record))
    postgres = Store(pg_url)
    with pytest.raises(RecordError, match=re.escape(f"{bad.name}: {key}: {message}")):
        records.import_records(postgres, [good, bad])
    assert postgres.list_attempts() == []
    sqlite = Store(f"sqlite:///{tmp_path / 'b.db'}")  # 64-bit integers, lengths not enforced
    assert len(records.import_records(sqlite, [good, bad])) == 2


def test_an_attempt_is_written_whole_or_not_at_all(source: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from metalearn.registry import metric_writes

    path = _exported(source, tmp_path / "r")[0]
    upsert = metric_writes.upsert

    def fail_on_results(conn, table, rows, keys, update):  # noqa: ANN001, ANN202
        if table is schema.test_results:
            raise OSError("disk full")
        return upsert(conn, table, rows, keys, update)

    monkeypatch.setattr(metric_writes, "upsert", fail_on_results)
    target = Store(f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(OSError, match="disk full"):
        records.import_records(target, [path])
    assert target.list_attempts() == [] and target.metrics(1) == []  # rolled back, row and rows
