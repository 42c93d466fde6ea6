"""A support or query set given as JSON rows (the HTTP API's `POST /runs/{id}/predict`) read into
`Examples`, checked as `examples.read_examples` checks a file, before any model runs; every error
names the key and the row (`support[3].text`).

A row is `{"text": ..., "label": ...}` for a text model, `{"x": [numbers], "label": ...}` for a
numbers model (`x` as many numbers as the model has inputs; one number may be given bare); the
label is required in the support set, and in a query set either every row has one (the rows
are then scored) or none. Image models are refused: a JSON row carries no image (predict
images with `metalearn predict` on a folder).
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

from metalearn.inference.errors import ExamplesError
from metalearn.inference.examples import Examples
from metalearn.inference.inputs import ImageInputs, Inputs, NumberInputs, TextInputs

SOURCE = "JSON"  # what `Examples.where` names the rows by: `support=JSON`
TEXT, NUMBERS, LABEL = "text", "x", "label"


def json_inputs(inputs: Inputs, model: str) -> TextInputs | NumberInputs:
    """`inputs` as JSON rows name them (`text`, `x`, `label`); an image model is refused."""
    if isinstance(inputs, ImageInputs):
        raise ExamplesError(f"{model} reads images, and a JSON row carries none: predict images "
                            f"with `metalearn predict` on a folder of <class>/<image> files")
    if isinstance(inputs, TextInputs):
        return dataclasses.replace(inputs, text_column=TEXT, label_column=LABEL)
    return dataclasses.replace(inputs, label_column=LABEL)


def examples_from_rows(rows: Sequence[Mapping[str, Any]], *, key: str, inputs: TextInputs | NumberInputs,
                       labelled: bool, model: str) -> Examples:
    """The rows as `Examples` for a model taking `inputs` (from `json_inputs`); labelled: every
    row needs its label (the support set), else all or none have one (a query set to score)."""
    if not rows:
        raise ExamplesError(f"{key}: no rows")
    has_labels = labelled or any(row.get(LABEL) is not None for row in rows)
    out = Examples(key=key, source=SOURCE, inputs=[], names=[],
                   name_column=TEXT if isinstance(inputs, TextInputs) else NUMBERS,
                   labels=[] if has_labels else None, lines=[])
    for i, row in enumerate(rows):
        at = f"{key}[{i}]"
        if isinstance(inputs, TextInputs):
            text = _text(row, at, model)
            out.inputs.append(text)
            out.names.append(text)
        else:
            values = _numbers(row, at, len(inputs.input_columns), model)
            out.inputs.append(values)
            out.names.append(",".join(f"{v:g}" for v in values))
        if out.labels is not None:
            out.labels.append(_label(row, at, labelled))
        out.lines.append(at)
    return out


def _text(row: Mapping[str, Any], at: str, model: str) -> str:
    if row.get(NUMBERS) is not None:
        raise ExamplesError(f"{at}.{NUMBERS}: {model} reads texts: give each row's {TEXT!r}, not {NUMBERS!r}")
    text = row.get(TEXT)
    if not isinstance(text, str) or not text.strip():
        raise ExamplesError(f"{at}.{TEXT}: missing or empty ({model} reads texts)")
    return text


def _numbers(row: Mapping[str, Any], at: str, width: int, model: str) -> list[float]:
    if row.get(TEXT) is not None:
        raise ExamplesError(f"{at}.{TEXT}: {model} reads numbers: give each row's {NUMBERS!r} "
                            f"({width} number{'s' if width > 1 else ''}), not {TEXT!r}")
    raw = row.get(NUMBERS)
    values = [raw] if isinstance(raw, int | float) and not isinstance(raw, bool) else raw
    if not isinstance(values, list) or len(values) != width:
        raise ExamplesError(f"{at}.{NUMBERS}: {model} takes {width} input number"
                            f"{'s' if width > 1 else ''} per row, a list of {width}")
    for j, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ExamplesError(f"{at}.{NUMBERS}[{j}]: {v!r} is not a finite number")
    return [float(v) for v in values]


def _label(row: Mapping[str, Any], at: str, labelled: bool) -> str:
    label = row.get(LABEL)
    if isinstance(label, bool) or not isinstance(label, str | int | float):
        why = "every support row has one" if labelled else "label every query row or none"
        raise ExamplesError(f"{at}.{LABEL}: missing ({why})")
    text = label.strip() if isinstance(label, str) else repr(label)
    if not text:
        raise ExamplesError(f"{at}.{LABEL}: empty")
    return text
