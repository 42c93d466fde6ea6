"""Which family, group, class and split every row of a text dataset belongs to.

Read from the named columns of any `datasets.Dataset` (Arrow, no tokenizer), checked, and
normalised: a family is the value of the task column (or the values of several, joined by
`/`), a group is the group column's value (else the family), a class is the label as text
with a rank that fixes label order (integers numerically, ClassLabel by id, text
alphabetically). What the tokenized cache stores beside the token ids, and all `preflight`
reads.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from datasets import ClassLabel, Dataset

INDEX_COLUMNS = ("family", "group", "label", "rank", "split")


@dataclass(frozen=True)
class Columns:
    """The user's column names (data.text_column, ...)."""

    text: str
    label: str
    task: tuple[str, ...]
    group: str | None = None
    split: str | None = None

    @classmethod
    def of(cls, text: str, label: str, task: str | Sequence[str], group: str | None,
           split: str | None) -> Columns:
        tasks = (task,) if isinstance(task, str) else tuple(task)
        if not tasks:
            raise ValueError("data.task_column must name at least one column")
        return cls(text, label, tasks, group, split)

    def named(self) -> list[tuple[str, str]]:
        """(config key, column) of every column the data must have."""
        out = [("text_column", self.text), ("label_column", self.label)]
        out += [("task_column", t) for t in self.task]
        out += [(k, c) for k, c in (("group_column", self.group), ("split_column", self.split))
                if c is not None]
        return out


def check_columns(data: Dataset, columns: Columns, source: str) -> None:
    """Every named column exists, else an error that lists the columns there are."""
    have = list(data.column_names)
    for key, name in columns.named():
        if name not in have:
            raise ValueError(f"data.{key} {name!r} is not a column of {source}; its columns are: "
                             f"{', '.join(have)}")


def _empty(value: Any) -> bool:
    return (value is None or (isinstance(value, float) and math.isnan(value))
            or (isinstance(value, str) and not value.strip()))


def _as_name(value: Any) -> Any:
    """A cell as a name: text stripped, whole floats (CSV integers next to a blank) as int."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _values(table, key: str, name: str, source: str) -> list:
    """A column's cells as names, with an error naming the first empty one."""
    values = table.column(name).to_pylist()
    empty = [i for i, v in enumerate(values) if _empty(v)]
    if empty:
        raise ValueError(f"data.{key} {name!r} is empty on {len(empty)} row(s) of {source} "
                         f"(first: row {empty[0]}, counting data rows from 0); every row needs a "
                         f"{key.removesuffix('_column')}")
    return [_as_name(v) for v in values]


def _ranked(values: list, feature: Any) -> tuple[np.ndarray, np.ndarray]:
    """Class names (text) and their ranks: ClassLabel by id, integers numerically, else text."""
    if isinstance(feature, ClassLabel):
        bad = sorted({v for v in values if not 0 <= v < feature.num_classes})
        if bad:
            raise ValueError(f"labels {bad[:5]} are not classes of the ClassLabel "
                             f"{feature.names[:10]} (-1 marks an unlabelled row: leave that "
                             f"split out of data_files)")
        names = [feature.int2str(i) for i in range(feature.num_classes)]
        return np.asarray(names)[np.asarray(values)], np.asarray(values)
    distinct = set(values)
    numeric = all(isinstance(v, int) and not isinstance(v, bool) for v in distinct)
    order = sorted(distinct) if numeric else sorted(distinct, key=str)
    rank = {v: i for i, v in enumerate(order)}
    return np.asarray([str(v) for v in values]), np.asarray([rank[v] for v in values])


def text_index(data: Dataset, columns: Columns, source: str) -> dict[str, np.ndarray]:
    """family, group, label (class name), rank and split (or None) of every row; checks that
    the columns exist and no row lacks a task, group, label, split or text."""
    check_columns(data, columns, source)
    wanted = list(dict.fromkeys(c for _, c in columns.named()))
    table = data.select_columns(wanted).with_format("arrow")[:]
    nulls = table.column(columns.text).null_count
    if nulls:
        first = table.column(columns.text).is_null().to_pylist().index(True)
        raise ValueError(f"data.text_column {columns.text!r} is empty on {nulls} row(s) of "
                         f"{source} (first: row {first}, counting data rows from 0)")
    parts = [_values(table, "task_column", t, source) for t in columns.task]
    family = np.asarray(["/".join(str(p) for p in ps) for ps in zip(*parts, strict=False)]
                        if len(parts) > 1 else [str(p) for p in parts[0]])
    group = (np.asarray([str(v) for v in _values(table, "group_column", columns.group, source)])
             if columns.group else family)
    label, rank = _ranked(_values(table, "label_column", columns.label, source),
                          data.features[columns.label])
    split = None
    if columns.split:
        split = np.asarray([str(v) for v in _values(table, "split_column", columns.split, source)])
    return {"family": family, "group": group, "label": label, "rank": rank, "split": split}


def index_dataset(data: Dataset, columns: Columns, source: str) -> Dataset:
    """The rows as text plus the index columns: what gets tokenized and cached."""
    index = text_index(data, columns, source)
    texts = [str(t) for t in data.select_columns([columns.text]).with_format("arrow")[:]
             .column(columns.text).to_pylist()]
    out = {"text": texts, **{k: v.tolist() for k, v in index.items() if v is not None}}
    return Dataset.from_dict(out)
