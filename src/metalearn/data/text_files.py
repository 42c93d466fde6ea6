"""Local text data files (data.data_files: CSV, TSV, JSON Lines, JSON) checked before
`datasets` reads them, so an empty or broken file is refused naming the file (and the line):
`datasets` says "An error occurred while generating the dataset" for an empty CSV, and names
neither the file of a glob nor the line of a broken JSON Lines record.

Each file is read a line at a time (a JSON document that is no JSON Lines file whole).
"""
from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

TABLES = {".csv": ",", ".tsv": "\t"}
JSON_SUFFIXES = (".json", ".jsonl")


def check_text_file(path: Path) -> None:
    """ValueError naming path (and the line) if a CSV / TSV file has no header or no rows, or a
    JSON Lines file a line that is not a JSON object; other formats are left to their reader."""
    suffix = path.suffix.lower()
    if suffix in TABLES:
        _check_table(path, TABLES[suffix], suffix[1:].upper())
    elif suffix in JSON_SUFFIXES:
        _check_json(path, whole_allowed=suffix == ".json")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line, as UTF-8; ValueError naming the line that is not."""
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path}: line {number}: not UTF-8 text ({exc.reason})") from None


def _check_table(path: Path, delimiter: str, kind: str) -> None:
    """A header row and at least one row after it."""
    rows = (cells for cells in csv.reader((text for _, text in _lines(path)), delimiter=delimiter)
            if any(c.strip() for c in cells))
    header = next(rows, None)
    if header is None:
        raise ValueError(f"{path}: an empty {kind} file (no header row)")
    if next(rows, None) is None:
        raise ValueError(f"{path}: a header ({delimiter.join(header)[:200]}) and no rows")


def _check_json(path: Path, whole_allowed: bool) -> None:
    """JSON Lines: each non-blank line a JSON object. With whole_allowed (a .json file), one
    JSON document (a list of objects, or an object holding them) passes too."""
    seen = False
    for number, text in _lines(path):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            if whole_allowed and not seen and _whole_document(path):
                return
            raise ValueError(f"{path}: line {number}: not JSON ({exc})") from None
        if not isinstance(record, dict):
            if whole_allowed and not seen and isinstance(record, list):
                _check_records(path, record)
                return
            raise ValueError(f"{path}: line {number}: a JSON record is an object, not a "
                             f"{_json_kind(record)}")
        seen = True
    if not seen:
        raise ValueError(f"{path}: an empty file (no JSON records)")


def _whole_document(path: Path) -> bool:
    """Whether path holds one JSON document (its records checked where it is a list)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError):
        return False
    if isinstance(document, list):
        _check_records(path, document)
    return isinstance(document, (list, dict))


def _check_records(path: Path, records: list) -> None:
    """A JSON list of objects, else ValueError naming the first element that is not."""
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise ValueError(f"{path}: element {i} of the JSON list is not an object but a "
                             f"{_json_kind(record)}")


def _json_kind(value: object) -> str:
    """What a JSON value is, in JSON's words."""
    kinds = {list: "list", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)
