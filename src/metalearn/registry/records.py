"""Records: one finished attempt as files to commit, and those files loaded back into a registry.

A record is `<experiment>/<created>-<id8>.json`: the attempt's row (config, overrides, commit,
host, times, status), its test results, a summary of each metric and where its metric rows
are. The rows go beside it as `<same name>.metrics.csv.gz` (name, step, value, time) while
they compress to at most MAX_ROWS_BYTES; a larger attempt keeps the summaries only. Everything
a record says is read from the registry or derived from what it holds (the id from host, pid,
creation time and name; the hardware from the config), so exporting, importing into another
registry and exporting again gives the same bytes, and importing twice adds nothing twice.
(A record without its rows imports each metric's last value only, and exports again with
the summaries of those.)
"""
from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import math
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from metalearn.registry import limits, schema
from metalearn.registry.errors import RecordError, RegistryError
from metalearn.registry.store import Store

log = logging.getLogger(__name__)

FORMAT = 1  # bump when a record's keys change meaning; older readers refuse newer records
MAX_ROWS_BYTES = 512 * 1024  # metric rows are committed beside the record up to this, gzipped
# What a rows file may expand to, and how many rows it may hold, when it is read back: such a
# file of 512 KiB holds at most about 170,000 rows and 6 MiB of text (11x for constant values,
# 3.4x for random ones), so anything far beyond is no export of metalearn's (a gzip bomb) and
# is refused before it fills memory.
MAX_ROWS_TEXT_BYTES = 32 * MAX_ROWS_BYTES
MAX_METRIC_ROWS = 500_000
ROWS_SUFFIX = ".metrics.csv.gz"
ROWS_HEADER = ("name", "step", "value", "time")
# Fixed namespace of record ids: uuid5(NAMESPACE, host | pid | created_at | name).
NAMESPACE = uuid.UUID("5b0f6c3e-2f0c-4c53-9a2e-6d1b1f6f7a31")
# Registry columns a record carries when the registry has them (a sweep's study and trial,
# what the attempt ran on).
OPTIONAL_COLUMNS = ("study", "trial", "environment")
# The attempt columns a record holds as they are (times, commit, parent and id are converted).
PLAIN_COLUMNS = ("experiment", "name", "kind", "algorithm", "status")
PATH_COLUMNS = ("output_dir", "ckpt_path", "log_name", "error")
RESULT_FIELDS = ("group", "metric", "value", "ci95", "episodes", "shots", "queries")
SUMMARY_FIELDS = ("count", "last_step", "last", "min", "max")


# ---- export ----------------------------------------------------------------------------
@dataclass
class Rendered:
    """A record and the files that hold it, named relative to the records folder."""

    record: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def json_name(self) -> str:
        """The record file's path under the records folder."""
        return next(name for name in self.files if name.endswith(".json"))


def record_id(host: str | None, pid: int | None, created_at: datetime, name: str | None) -> str:
    """The record id of an attempt: a UUID derived from what identifies it in any registry."""
    key = "|".join((host or "", "" if pid is None else str(pid), iso(created_at), name or ""))
    return str(uuid.uuid5(NAMESPACE, key))


def iso(value: datetime | None) -> str | None:
    """A naive UTC time as ISO 8601 with microseconds and a Z."""
    return None if value is None else value.isoformat(timespec="microseconds") + "Z"


def parse_time(text: str) -> datetime:
    """The naive UTC time of an `iso` string; ValueError otherwise."""
    if not text.endswith("Z"):
        raise ValueError(f"{text!r} is not a UTC time ending in Z")
    return datetime.fromisoformat(text[:-1])


def render(store: Store, attempt_id: int, max_rows_bytes: int = MAX_ROWS_BYTES) -> Rendered:
    """The record of a finished attempt and its files; refuses one still queued or running."""
    row = store.get_attempt(attempt_id)
    if row["status"] not in schema.TERMINAL:
        raise RegistryError(f"attempt {attempt_id} is {row['status']}: "
                            "export it once it has finished")
    rows = store.metrics(attempt_id)
    rid = record_id(row["host"], row["pid"], row["created_at"], row["name"])
    stem = f"{folder_name(row['experiment'])}/{row['created_at']:%Y%m%dT%H%M%S}-{rid[:8]}"
    packed = pack_rows(rows)
    if rows and len(packed) <= max_rows_bytes:
        files = {stem + ROWS_SUFFIX: packed}
        metric_rows = {"file": Path(stem).name + ROWS_SUFFIX, "rows": len(rows)}
    else:
        files = {}
        metric_rows = {"file": None, "rows": len(rows)}
        if rows:
            log.warning("attempt %d: %d metric rows are %d KiB gzipped, over %d KiB; the record "
                        "keeps their summaries only", attempt_id, len(rows), len(packed) // 1024,
                        max_rows_bytes // 1024)
    parent = None
    if row["parent_id"] is not None:
        try:
            p = store.get_attempt(row["parent_id"])
            parent = record_id(p["host"], p["pid"], p["created_at"], p["name"])
        except RegistryError:
            parent = None
    commit = row["git_commit"]
    record: dict[str, Any] = {"format": FORMAT, "id": rid}
    record.update({c: row[c] for c in PLAIN_COLUMNS})
    record.update({c: row[c] for c in OPTIONAL_COLUMNS if row.get(c) is not None})
    record.update({
        "parent": parent,
        "overrides": row["overrides"],
        "command": row["command"],
        "tags": row["tags"],
        "git_commit": None if commit is None else commit.removesuffix("-dirty"),
        "git_dirty": None if commit is None else commit.endswith("-dirty"),
        "host": row["host"],
        "pid": row["pid"],
        "hardware": hardware(row["host"], row["config"], row.get("environment")),
        "created_at": iso(row["created_at"]),
        "started_at": iso(row["started_at"]),
        "ended_at": iso(row["ended_at"]),
    })
    record.update({c: row[c] for c in PATH_COLUMNS})
    record["test_results"] = [{f: r[f] for f in RESULT_FIELDS}
                              for r in store.test_results(attempt_id)]
    record["metrics"] = summarize(rows)
    record["metric_rows"] = metric_rows
    record["config"] = row["config"]
    record = finite(record)
    files[stem + ".json"] = dumps(record)
    return Rendered(record, files)


def folder_name(experiment: str | None) -> str:
    """The records folder of an experiment (attempts without one share `_none`)."""
    name = (experiment or "_none").replace("/", "_")
    return name if name not in (".", "..") else "_none"


def hardware(host: str | None, config: Any, environment: Any = None) -> dict[str, Any]:
    """Where the attempt ran, as far as its row says: the host, the trainer's accelerator, and
    the CPU model and accelerator names where the registry recorded its environment."""
    trainer = config.get("trainer") if isinstance(config, dict) else None
    trainer = trainer if isinstance(trainer, dict) else {}
    found = {"host": host, "accelerator": trainer.get("accelerator"),
             "devices": trainer.get("devices"), "precision": trainer.get("precision")}
    if isinstance(environment, dict):
        found.update({k: environment.get(k) for k in ("cpu", "cpu_count", "accelerators")})
    return found


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per metric name: rows, last step, the value there, lowest and highest (NaN left out)."""
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = out.setdefault(r["name"], {"count": 0, "last_step": None, "last": None,
                                       "min": None, "max": None})
        s["count"] += 1
        if s["last_step"] is None or r["step"] >= s["last_step"]:
            s["last_step"], s["last"] = r["step"], r["value"]
        if r["value"] is not None:
            s["min"] = r["value"] if s["min"] is None else min(s["min"], r["value"])
            s["max"] = r["value"] if s["max"] is None else max(s["max"], r["value"])
    return dict(sorted(out.items()))


def pack_rows(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Metric rows as gzipped CSV (name, step, value, time; a NaN value as an empty cell),
    with no time stamp in the gzip header so the same rows give the same bytes."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    # The minimal quoting leaves a \r unquoted, which no CSV reader takes back: such a name is
    # quoted (every other row keeps the bytes it always had).
    quoted = csv.writer(text, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow(ROWS_HEADER)
    for r in rows:
        cells = [r["name"], int(r["step"]), "" if r["value"] is None else repr(r["value"]),
                 repr(float(r["time"]))]
        (quoted if "\r" in r["name"] else writer).writerow(cells)
    return gzip.compress(text.getvalue().encode(), compresslevel=9, mtime=0)


def finite(value: Any) -> Any:
    """JSON data with NaN and infinities as null (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(record: Mapping[str, Any]) -> bytes:
    """A record as the JSON committed: keys in the record's order, two-space indent, a newline."""
    return (json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def export(store: Store, attempt_ids: Sequence[int], out_dir: Path,
           max_rows_bytes: int = MAX_ROWS_BYTES) -> list[tuple[Path, bool]]:
    """Write the records of attempts under out_dir; (record path, whether it changed) each."""
    rendered = [render(store, i, max_rows_bytes) for i in attempt_ids]  # all checked first
    done = []
    for r in rendered:
        changed = False
        for name, data in r.files.items():
            path = out_dir / name
            if not path.is_file() or path.read_bytes() != data:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                changed = True
        stale = out_dir / (r.json_name.removesuffix(".json") + ROWS_SUFFIX)
        if r.record["metric_rows"]["file"] is None and stale.is_file():
            stale.unlink()  # the rows outgrew the limit since the last export
            changed = True
        done.append((out_dir / r.json_name, changed))
    return done


# ---- reading and checking --------------------------------------------------------------
@dataclass
class Loaded:
    """A checked record, where it was read from and its metric rows (when asked for)."""

    record: dict[str, Any]
    path: Path | None = None
    rows: list[dict[str, Any]] | None = None


def _opt(kind: type | tuple[type, ...]) -> Callable[[Any], bool]:
    return lambda v: v is None or (isinstance(v, kind) and not isinstance(v, bool))


def _is(kind: type | tuple[type, ...]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, kind) and not (isinstance(v, bool) and kind is not bool)


def _time_ok(v: Any) -> bool:
    try:
        parse_time(v)
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _str_list(v: Any) -> bool:
    return v is None or (isinstance(v, list) and all(isinstance(x, str) for x in v))


_NUMBER = (int, float)
# key -> (what it must be, the check); every key is required, OPTIONAL_COLUMNS excepted.
_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "format": ("an integer", _is(int)),
    "id": ("a UUID string", lambda v: isinstance(v, str) and _uuid_ok(v)),
    "experiment": ("a string or null", _opt(str)),
    "name": ("a string or null", _opt(str)),
    "kind": ("a string", _is(str)),
    "algorithm": ("a string or null", _opt(str)),
    "status": (f"one of {', '.join(schema.TERMINAL)}", lambda v: v in schema.TERMINAL),
    "study": ("a string or null", _opt(str)),
    "trial": ("an integer or null", _opt(int)),
    "environment": ("an object or null", _opt(dict)),
    "parent": ("a UUID string or null",
               lambda v: v is None or (isinstance(v, str) and _uuid_ok(v))),
    "overrides": ("a list of strings or null", _str_list),
    "command": ("a list of strings or null", _str_list),
    "tags": ("JSON data", lambda v: True),
    "git_commit": ("a string or null", _opt(str)),
    "git_dirty": ("true, false or null", lambda v: v is None or isinstance(v, bool)),
    "host": ("a string or null", _opt(str)),
    "pid": ("an integer or null", _opt(int)),
    "hardware": ("an object", _is(dict)),
    "created_at": ("a UTC time like 2026-01-31T12:00:00.000000Z", _time_ok),
    "started_at": ("a UTC time or null", lambda v: v is None or _time_ok(v)),
    "ended_at": ("a UTC time or null", lambda v: v is None or _time_ok(v)),
    "output_dir": ("a string or null", _opt(str)),
    "ckpt_path": ("a string or null", _opt(str)),
    "log_name": ("a string or null", _opt(str)),
    "error": ("a string or null", _opt(str)),
    "test_results": ("a list of objects", lambda v: isinstance(v, list)
                     and all(isinstance(x, dict) for x in v)),
    "metrics": ("an object of metric summaries", lambda v: isinstance(v, dict)
                and all(isinstance(x, dict) for x in v.values())),
    "metric_rows": ("an object with file and rows", _is(dict)),
    "config": ("an object or null", _opt(dict)),
}
_RESULT_CHECKS = {"group": _is(str), "metric": _is(str), "value": _opt(_NUMBER),
                  "ci95": _opt(_NUMBER), "episodes": _is(int), "shots": _is(int),
                  "queries": _is(int)}
_SUMMARY_CHECKS = {"count": _is(int), "last_step": _opt(int), "last": _opt(_NUMBER),
                   "min": _opt(_NUMBER), "max": _opt(_NUMBER)}


def _uuid_ok(text: str) -> bool:
    try:
        return str(uuid.UUID(text)) == text
    except ValueError:
        return False


def check(record: Any, source: str, dialect: str = limits.WIDEST) -> dict[str, Any]:
    """The record if every key holds what it should and every value fits its registry column on
    dialect (`sqlite`, `postgresql`); RecordError naming source and key if not."""
    def bad(key: str, problem: str) -> RecordError:
        return RecordError(f"{source}: {key}: {problem}")

    if not isinstance(record, dict):
        raise bad("(top level)", "a record is a JSON object")
    version = record.get("format")
    if isinstance(version, int) and version > FORMAT:
        raise bad("format", f"{version} is newer than this metalearn reads ({FORMAT}); upgrade it")
    for key, (what, ok) in _CHECKS.items():
        if key not in record:
            if key in OPTIONAL_COLUMNS:
                continue
            raise bad(key, "missing")
        if not ok(record[key]):
            raise bad(key, f"must be {what}, not {record[key]!r:.80}")
    unknown = sorted(set(record) - set(_CHECKS))
    if unknown:
        raise bad(unknown[0], "not a record key" + (f" (nor {unknown[1:]})" if unknown[1:] else ""))
    if version != FORMAT:
        raise bad("format", f"must be {FORMAT}, not {version!r}")
    derived = record_id(record["host"], record["pid"], parse_time(record["created_at"]),
                        record["name"])
    if record["id"] != derived:
        raise bad("id", f"{record['id']} does not match host, pid, created_at and name "
                        f"({derived}): the record was edited")
    for i, r in enumerate(record["test_results"]):
        for key, ok in _RESULT_CHECKS.items():
            if key not in r or not ok(r[key]):
                raise bad(f"test_results[{i}].{key}", f"missing or wrong type: {r.get(key)!r:.80}")
        extra = set(r) - set(_RESULT_CHECKS)
        if extra:
            raise bad(f"test_results[{i}].{sorted(extra)[0]}", "not a test result field")
    for name, s in record["metrics"].items():
        for key, ok in _SUMMARY_CHECKS.items():
            if key not in s or not ok(s[key]):
                raise bad(f"metrics[{name!r}].{key}", f"missing or wrong type: {s.get(key)!r:.80}")
    rows = record["metric_rows"]
    if set(rows) != {"file", "rows"} or not _opt(str)(rows["file"]) or not _is(int)(rows["rows"]):
        raise bad("metric_rows",
                  f"must be {{\"file\": name or null, \"rows\": count}}, not {rows!r:.80}")
    if rows["file"] is not None and (Path(rows["file"]).name != rows["file"]
                                     or not rows["file"].endswith(ROWS_SUFFIX)):
        raise bad("metric_rows.file", f"must be a file name beside the record ending in "
                                      f"{ROWS_SUFFIX}, not {rows['file']!r}")
    for key, problem in _column_problems(record, dialect):
        raise bad(key, problem)
    return record


def _column_problems(record: Mapping[str, Any], dialect: str) -> Iterable[tuple[str, str]]:
    """(key, why) for each value of a checked record that its registry column cannot hold."""
    attempt, result, metric = schema.attempts.c, schema.test_results.c, schema.metrics.c
    for key, value in attempt_fields(record).items():
        if key in attempt and (problem := limits.problem(attempt[key], value, dialect)):
            yield key, problem
    for i, r in enumerate(record["test_results"]):
        for key in RESULT_FIELDS:
            if problem := limits.problem(result[key], r[key], dialect):
                yield f"test_results[{i}].{key}", problem
    for name, s in record["metrics"].items():
        if problem := limits.problem(metric.name, name, dialect):
            yield f"metrics[{name!r:.80}]", problem
        for key, column in (("last_step", metric.step), ("last", metric.value),
                            ("min", metric.value), ("max", metric.value)):
            if problem := limits.problem(column, s[key], dialect):
                yield f"metrics[{name!r:.80}].{key}", problem


def load(path: Path, with_rows: bool = False, dialect: str = limits.WIDEST) -> Loaded:
    """Read and check one record (and its metric rows if with_rows) for a registry on dialect;
    RecordError naming the file if it is malformed or holds what the registry cannot."""
    source = str(path)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordError(f"{source}: cannot be read: {exc}") from None
    except (ValueError, RecursionError) as exc:  # ValueError: JSONDecodeError, a 5000-digit number
        raise RecordError(f"{source}: not JSON: {exc}") from None
    check(record, source, dialect)
    loaded = Loaded(record, path)
    name = record["metric_rows"]["file"]
    if with_rows and name is not None:
        loaded.rows = unpack_rows(path.parent / name, dialect=dialect,
                                  expected=record["metric_rows"]["rows"])
        if len(loaded.rows) != record["metric_rows"]["rows"]:
            raise RecordError(f"{source}: metric_rows.rows: {record['metric_rows']['rows']}, but "
                              f"{name} holds {len(loaded.rows)} rows")
        if finite(summarize(loaded.rows)) != record["metrics"]:
            raise RecordError(f"{source}: metrics: the summaries do not match the rows in {name}")
    return loaded


class _Capped(io.RawIOBase):
    """A binary stream that stops with RecordError once more than limit bytes were read."""

    def __init__(self, stream: io.BufferedIOBase, limit: int, path: Path) -> None:
        super().__init__()
        self.stream, self.limit, self.path, self.total = stream, limit, path, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self.stream.readinto(buffer)
        self.total += count
        if self.total > self.limit:
            raise RecordError(f"{self.path}: expands to more than {self.limit // 2 ** 20} MiB, "
                              "far more than the metric rows of a record take: not read further")
        return count


def unpack_rows(path: Path, *, dialect: str = limits.WIDEST,
                expected: int | None = None) -> list[dict[str, Any]]:
    """The metric rows of a `.metrics.csv.gz` file, each fitting the registry on dialect;
    RecordError naming the file and line.

    The file is decompressed as it is read, and refused once it expands past
    MAX_ROWS_TEXT_BYTES or holds more than MAX_METRIC_ROWS rows (or more than the expected
    count its record declares), so a small file cannot fill memory.
    """
    most = MAX_METRIC_ROWS if expected is None else min(expected, MAX_METRIC_ROWS)
    metric = schema.metrics.c
    reader = None
    try:
        with gzip.open(path, "rb") as packed:
            # Lines end at \n only: pack_rows leaves a \r inside a metric name unquoted.
            text = io.TextIOWrapper(io.BufferedReader(_Capped(packed, MAX_ROWS_TEXT_BYTES, path)),
                                    encoding="utf-8", newline="\n")
            reader = csv.reader(text)
            header = next(reader, None)
            if tuple(header or ()) != ROWS_HEADER:
                raise RecordError(f"{path}: line 1: the header must be {','.join(ROWS_HEADER)}, "
                                  f"not {header!r:.80}")
            rows = []
            for cells in reader:
                if len(rows) == most:
                    raise RecordError(f"{path}: line {reader.line_num}: more than {most} rows ("
                                      + ("the count its record declares)" if most == expected
                                         else "the most a rows file holds)"))
                rows.append(_row(path, reader.line_num, cells, dialect, metric))
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        raise RecordError(f"{path}: cannot be read as gzipped text: {exc}") from None
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 1
        raise RecordError(f"{path}: line {line}: not CSV: {exc}") from None
    return rows


def _row(path: Path, line: int, cells: list[str], dialect: str, metric: Any) -> dict[str, Any]:
    """One metric row of a rows file; RecordError naming the file and line if malformed."""
    try:
        name, step, value, time = cells
        row = {"name": name, "step": int(step), "value": None if value == "" else float(value),
               "time": float(time)}
    except ValueError:
        raise RecordError(f"{path}: line {line}: expected name,step,value,time with an "
                          f"integer step and numbers, got {','.join(cells)!r:.80}") from None
    for key, cell in row.items():
        if problem := limits.problem(metric[key], cell, dialect):
            raise RecordError(f"{path}: line {line}: {key} {problem}")
    return row


def record_paths(paths: Iterable[Path]) -> list[Path]:
    """The record files named: files as given, folders searched for *.json, in path order."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            found.extend(sorted(p.rglob("*.json")))
        elif p.is_file():
            found.append(p)
        else:
            raise RecordError(f"{p}: no such file or folder")
    return found


def load_all(paths: Iterable[Path], with_rows: bool = False,
             dialect: str = limits.WIDEST) -> list[Loaded]:
    """Every record under paths, all checked for a registry on dialect (the first malformed one
    raises), oldest first."""
    loaded = [load(p, with_rows, dialect) for p in record_paths(paths)]
    seen: dict[str, Path | None] = {}
    for item in loaded:
        rid = item.record["id"]
        if rid in seen:
            raise RecordError(f"{item.path}: id: {rid} is also the id of {seen[rid]}")
        seen[rid] = item.path
    return sorted(loaded, key=lambda item: item.record["created_at"])


# ---- import ----------------------------------------------------------------------------
def attempt_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The registry row of a record (parent left out: it is resolved in the target registry)."""
    commit = record["git_commit"]
    fields = {c: record[c] for c in (*PLAIN_COLUMNS, *PATH_COLUMNS, "overrides", "command",
                                     "tags", "host", "pid", "config")}
    fields.update({
        "git_commit": (None if commit is None
                       else commit + ("-dirty" if record["git_dirty"] else "")),
        "created_at": parse_time(record["created_at"]),
        "started_at": None if record["started_at"] is None else parse_time(record["started_at"]),
        "ended_at": None if record["ended_at"] is None else parse_time(record["ended_at"]),
        "heartbeat_at": None,
        "lease_until": None,
    })
    for column in OPTIONAL_COLUMNS:
        if column in record and column in schema.attempts.c:
            fields[column] = record[column]
        elif record.get(column) is not None:
            log.warning("%s: this registry has no %s column; it is left out",
                        record["id"], column)
    return fields


def summary_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """For a record without its metric rows: each metric's last value at its last step, so the
    registry still ranks and tables the attempt by its final values."""
    stamp = parse_time(record["ended_at"] or record["created_at"])
    time = (stamp - datetime(1970, 1, 1)).total_seconds()
    return [{"name": name, "step": s["last_step"], "value": s["last"], "time": time}
            for name, s in record["metrics"].items() if s["last_step"] is not None]


def import_records(store: Store, paths: Iterable[Path]) -> list[tuple[Path | None, int, bool]]:
    """Load records into a registry: (record path, attempt id, whether it was new) each.

    Every file is read and checked before anything is written, each value against what the
    registry's column holds on its backend; each attempt is then written in one transaction,
    whole or not at all. An attempt already in the registry (the same record id) is brought to
    the record's state: its row set from the record, its metric rows and test results
    upserted, nothing added twice.
    """
    loaded = load_all(paths, with_rows=True, dialect=store.dialect)
    local = {record_id(a["host"], a["pid"], a["created_at"], a["name"]): a["id"]
             for a in store.list_attempts()}
    done = []
    for item in loaded:
        record = item.record
        fields = attempt_fields(record)
        fields["parent_id"] = local.get(record["parent"]) if record["parent"] else None
        known = local.get(record["id"])
        attempt_id = store.put_attempt(
            fields, attempt_id=known,
            metrics=item.rows if item.rows is not None else summary_rows(record),
            test_results=[  # null (a NaN, as the registry stores it) as NaN
                {**r, **{k: math.nan for k in ("value", "ci95") if r[k] is None}}
                for r in record["test_results"]])
        local[record["id"]] = attempt_id
        done.append((item.path, attempt_id, known is None))
    return done
