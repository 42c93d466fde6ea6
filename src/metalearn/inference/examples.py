"""The user's examples: a support file of labelled rows of one new task, a query file of rows
to predict, read and checked before any model runs; every error names the key, the file and,
where there is one, the line.

Text and number models read CSV (TSV for a `.tsv` name) with a header row; image models read a
folder: `<class>/<image>` for the support set, images (or `<class>/<image>`, to be scored) for
the query set. A query file may carry the label column too: its rows are then scored.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from metalearn.data.image_files import IMAGE_SUFFIXES
from metalearn.inference.errors import ExamplesError
from metalearn.inference.inputs import ImageInputs, Inputs, NumberInputs, TextInputs


@dataclass(frozen=True)
class Examples:
    """Rows read from one file or folder.

    key: `support` or `query`; source: the path as given. inputs: texts, image paths or number
    rows; names: what names each row in the output (its text, the image's path in the folder,
    its inputs) under the column `name_column`. labels: as written (None: unlabelled); lines:
    where each row is (`file:line`, or the image's path), for messages.
    """

    key: str
    source: str
    inputs: list
    names: list[str]
    name_column: str
    labels: list[str] | None
    lines: list[str]

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def where(self) -> str:
        return f"{self.key}={self.source}"


def read_examples(source: str, *, key: str, inputs: Inputs, labelled: bool, model: str) -> Examples:
    """The rows of `source` for a model taking `inputs`; labelled: the label is required (the
    support set), else read where present (a query set to score). model: the checkpoint, as
    messages name it."""
    path = Path(source).expanduser()
    where = f"{key}={source}"
    if not path.exists():
        raise ExamplesError(f"{where}: no such file or folder")
    if isinstance(inputs, ImageInputs):
        if not path.is_dir():
            raise ExamplesError(f"{where} is a file, but {model} reads images: {key} must be a "
                                f"folder of {'<class>/<image>' if labelled else '<image>'} files")
        found = _image_rows(path, where, labelled)
    else:
        if path.is_dir():
            raise ExamplesError(f"{where} is a folder, but {model} reads rows of a CSV file: {key} "
                                f"must be one with the columns {', '.join(_columns(inputs, labelled))}")
        found = _csv_rows(path, where, inputs, labelled)
    if not found.inputs:
        raise ExamplesError(f"{where} holds no examples")
    return Examples(key=key, source=source, **found.__dict__)


@dataclass
class _Rows:
    inputs: list
    names: list[str]
    name_column: str
    labels: list[str] | None
    lines: list[str]


def _columns(inputs: TextInputs | NumberInputs, labelled: bool) -> list[str]:
    named = [inputs.text_column] if isinstance(inputs, TextInputs) else list(inputs.input_columns)
    return named + ([inputs.label_column] if labelled else [])


def _csv_rows(path: Path, where: str, inputs: TextInputs | NumberInputs, labelled: bool) -> _Rows:
    key_of = {inputs.label_column: "label_column"}
    if isinstance(inputs, TextInputs):
        key_of[inputs.text_column] = "text_column"
    else:
        key_of.update({c: "input_columns" for c in inputs.input_columns})
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            reader = csv.DictReader(fh, delimiter=delimiter)
            header = [h.strip() for h in reader.fieldnames or []]
            reader.fieldnames = header
            if not header:
                raise ExamplesError(f"{where}: an empty file (a header row naming the columns "
                                    f"{', '.join(_columns(inputs, labelled))} comes first)")
            for column in _columns(inputs, labelled):
                if column not in header:
                    raise ExamplesError(
                        f"{where}: no column {column!r} ({key_of[column]}); its columns are "
                        f"{', '.join(map(repr, header))}: name the right one with "
                        f"{key_of[column]}=...")
            has_labels = labelled or inputs.label_column in header
            rows = [(reader.line_num, row) for row in reader]
    except UnicodeDecodeError as exc:
        raise ExamplesError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except csv.Error as exc:
        raise ExamplesError(f"{where}: not a readable CSV file ({exc})") from exc
    out = _Rows([], [], inputs.text_column if isinstance(inputs, TextInputs) else ",".join(inputs.input_columns),
                [] if has_labels else None, [])
    for line, row in rows:
        at = f"{where}, line {line}"
        if None in row:
            raise ExamplesError(f"{at}: more cells than the header has columns")
        if isinstance(inputs, TextInputs):
            text = row.get(inputs.text_column)
            if text is None or not text.strip():
                raise ExamplesError(f"{at}: the text (text_column {inputs.text_column!r}) is empty")
            out.inputs.append(text)
            out.names.append(text)
        else:
            values = []
            for column in inputs.input_columns:
                cell = (row.get(column) or "").strip()
                try:
                    values.append(float(cell))
                except ValueError:
                    raise ExamplesError(f"{at}: input_columns {column!r} holds {cell!r}, not a "
                                        f"number") from None
            out.inputs.append(values)
            out.names.append(",".join(row[c].strip() for c in inputs.input_columns))
        if out.labels is not None:
            label = (row.get(inputs.label_column) or "").strip()
            if not label:
                raise ExamplesError(f"{at}: the label (label_column {inputs.label_column!r}) is "
                                    f"empty{'' if labelled else ' (a query file scored needs every label)'}")
            out.labels.append(label)
        out.lines.append(f"line {line}")
    return out


def _images(folder: Path, where: str) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for p in files:
        if p.is_dir() or p.suffix.lower() not in IMAGE_SUFFIXES:
            raise ExamplesError(f"{where}: {p} is not an image ({', '.join(IMAGE_SUFFIXES)})")
    return files


def _image_rows(root: Path, where: str, labelled: bool) -> _Rows:
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    folders = [p for p in entries if p.is_dir()]
    if folders and len(folders) != len(entries):
        stray = next(p for p in entries if not p.is_dir())
        raise ExamplesError(f"{where}: {stray} sits beside class folders: the folder holds "
                            f"<class>/<image> or images, not both")
    if labelled and not folders:
        raise ExamplesError(f"{where}: no class folders: the support set is a folder of "
                            f"<class>/<image> files (the folder's name is the label)")
    out = _Rows([], [], "file", [] if folders else None, [])
    for folder in folders or [root]:
        for image in _images(folder, where):
            out.inputs.append(image)
            out.names.append(str(image.relative_to(root)))
            out.lines.append(str(image))
            if folders:
                out.labels.append(folder.name)
    return out
