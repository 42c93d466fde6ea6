"""Predictions as CSV rows: what names each query row, its label where the query file has
one, the prediction and, for a classifier, one `p(<label>)` column per class."""
from __future__ import annotations

import csv
from typing import TextIO

from metalearn.inference.examples import Examples
from metalearn.inference.predict import Predictions

PREDICTED = "predicted"


def prediction_rows(query: Examples, result: Predictions, label_column: str) -> list[dict[str, str]]:
    """One dict per query row, in the query file's order."""
    rows = []
    for i, name in enumerate(query.names):
        row = {query.name_column: name}
        if query.labels is not None:
            row[label_column] = query.labels[i]
        value = result.predicted[i]
        row[PREDICTED] = f"{value:.6g}" if isinstance(value, float) else str(value)
        if result.probabilities is not None:
            for label, p in zip(result.classes, result.probabilities[i].tolist(), strict=True):
                row[f"p({label})"] = f"{p:.4f}"
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, str]], out: TextIO) -> None:
    """The rows as CSV with a header (quoted where a text needs it)."""
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
