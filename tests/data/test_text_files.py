"""Local text data files (data.data_files) checked before `datasets` reads them: an empty CSV
or a broken JSON Lines file is refused naming the file, and the line for JSON Lines."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from metalearn.data.text_files import check_text_file


@pytest.mark.parametrize("name, content", [
    ("a.csv", "text,label\ngood,1\n"),
    ("a.tsv", "text\tlabel\ngood\t1\n"),
    ("a.jsonl", '{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n'),
    ("a.json", '{"text": "a", "label": 1}\n'),  # JSON Lines under .json
    ("b.json", '[{"text": "a", "label": 1},\n {"text": "b", "label": 0}]\n'),  # one document
    ("c.json", '{\n  "data": [{"text": "a", "label": 1}]\n}\n'),
    ("a.parquet", "not looked at"),
])
def test_readable_files_pass(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    check_text_file(path)


@pytest.mark.parametrize("name, content, message", [
    ("a.csv", "", "an empty CSV file (no header row)"),
    ("a.csv", "\n\n", "an empty CSV file (no header row)"),
    ("a.csv", "text,label\n", "a header (text,label) and no rows"),
    ("a.tsv", "", "an empty TSV file (no header row)"),
    ("a.jsonl", "", "an empty file (no JSON records)"),
    ("a.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": \n{"text": "c"}\n',
     "line 2: not JSON"),
    ("a.jsonl", '{"text": "a"}\n[1, 2]\n', "line 2: a JSON record is an object, not a list"),
    ("a.json", '{"text": "a"}\n{"text": \n', "line 2: not JSON"),
    ("b.json", '[{"text": "a"}, 3]', "element 1 of the JSON list is not an object"),
])
def test_an_unreadable_file_is_named(tmp_path: Path, name: str, content: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")):
        check_text_file(path)


def test_text_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "\xff"}\n')
    with pytest.raises(ValueError, match=re.escape(f"{path}: line 2: not UTF-8 text")):
        check_text_file(path)
