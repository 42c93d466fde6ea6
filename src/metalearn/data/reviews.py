"""Readers for the Amazon multi-domain reviews into one Hugging Face `Dataset`.

Two formats: the ARSC split files (`<domain>.<tK>.<split>`, `text<TAB>1|-1` lines) and the
"Meta Learning the Huggingface Way" write-up's `dataset.json` (a list of
`{domain, label: positive|negative, text}`, possibly under a top-level `"data"` key). Both
give columns text, label (1 positive, 0 negative), domain (ARSC spelling, no `&_`), task
(`t2`/`t4`/`t5`, or `all`) and split.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import numpy as np
from datasets import Dataset

from metalearn.data.fetch import fetch_hint

ARSC_NAME = re.compile(r"^(?P<domain>[a-z_]+)\.(?P<task>t\d)\.(?P<split>train|dev|test)$")
JSON_LABELS = {"positive": 1, "negative": 0}
COLUMNS = ("text", "label", "domain", "task", "split")


def canonical_domain(name: str) -> str:
    """Blitzer spelling (`computer_&_video_games`) to ARSC spelling (`computer_video_games`)."""
    return name.strip().lower().replace("_&_", "_").replace("&", "_")


def arsc_files(root: Path) -> list[Path]:
    """The ARSC split files under `root`, sorted (so the dataset order is fixed)."""
    return sorted(p for p in root.iterdir() if ARSC_NAME.match(p.name))


def arsc_rows(root: Path) -> Iterator[tuple[str, int, str, str, str]]:
    """(text, label, domain, task, split) of every review in the ARSC files under root, in order.

    A file without a single review is an error naming it: an empty family would otherwise
    vanish from the data without a word.
    """
    files = arsc_files(root)
    if not files:
        raise FileNotFoundError(f"no ARSC files (<domain>.t2.train, ...) in {root}; "
                                f"{fetch_hint('amazon')}")
    for path in files:
        meta = ARSC_NAME.match(path.name).groupdict()
        found = 0
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line:
                    continue
                text, sep, label = line.rpartition("\t")
                if not sep or label not in ("1", "-1"):
                    raise ValueError(f"{path}:{lineno}: expected 'text<TAB>1|-1', got {line[:80]!r}")
                found += 1
                yield text, 1 if label == "1" else 0, meta["domain"], meta["task"], meta["split"]
        if not found:
            raise ValueError(f"{path}: no reviews in this file (it is empty); remove it or fill it")


def read_arsc(root: Path) -> Dataset:
    """All ARSC split files under `root` as one Dataset."""
    cols: dict[str, list] = {name: [] for name in COLUMNS}
    for row in arsc_rows(root):
        for name, value in zip(COLUMNS, row, strict=False):
            cols[name].append(value)
    return Dataset.from_dict(cols)


def read_review_json(path: Path) -> Dataset:
    """The "Meta Learning the Huggingface Way" write-up's `dataset.json` format as a Dataset
    (task `all`, split `all`)."""
    try:
        with path.open(encoding="utf-8") as f:
            records = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    if isinstance(records, dict):
        if "data" not in records:
            raise ValueError(f"{path}: expected a JSON list of reviews or an object with a 'data' list")
        records = records["data"]
    if not isinstance(records, list) or not records:
        raise ValueError(f"{path}: no reviews (expected a non-empty JSON list)")
    cols: dict[str, list] = {name: [] for name in COLUMNS}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: record {i} is not an object with domain, label and text")
        missing = {"domain", "label", "text"} - set(rec)
        if missing:
            raise ValueError(f"{path}: record {i} lacks {sorted(missing)}")
        label = str(rec["label"]).strip().lower()
        if label not in JSON_LABELS:
            raise ValueError(f"{path}: record {i} has label {rec['label']!r}, not positive/negative")
        cols["text"].append(str(rec["text"]))
        cols["label"].append(JSON_LABELS[label])
        cols["domain"].append(canonical_domain(rec["domain"]))
        cols["task"].append("all")
        cols["split"].append("all")
    return Dataset.from_dict(cols)


def source_files(path: Path) -> list[Path]:
    """The files a review source is read from (their contents key the cache)."""
    return arsc_files(path) if path.is_dir() else [path]


def read_reviews(path: Path) -> Dataset:
    """A folder of ARSC files, or a seed-format JSON file."""
    if not path.exists():
        raise FileNotFoundError(
            f"review data not found at {path}; set data.path to the ARSC folder "
            f"(amazon_reviews/arsc) or to a dataset.json file; {fetch_hint('amazon')}"
        )
    return read_arsc(path) if path.is_dir() else read_review_json(path)


def review_index(path: Path) -> dict[str, np.ndarray]:
    """label, domain, task and split of every review, without the texts: what checks need.

    Read from the files (no tokenizer), remembered while they are unchanged, so a server can
    check each request against the data in milliseconds.
    """
    path = Path(path)
    return _review_index(path, tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                     for p in source_files(path)))


@lru_cache(maxsize=4)
def _review_index(path: Path, signature: tuple) -> dict[str, np.ndarray]:  # noqa: ARG001 (cache key)
    if path.is_dir():
        rows = [row[1:] for row in arsc_rows(path)]
        label, domain, task, split = (list(col) for col in zip(*rows, strict=False))
        return {"label": np.asarray(label), "domain": np.asarray(domain),
                "task": np.asarray(task), "split": np.asarray(split)}
    data = read_review_json(path)
    return {name: np.asarray(data[name]) for name in COLUMNS[1:]}
