"""Open whatever holds a text dataset as one Hugging Face `Dataset`, and say what keys its cache.

Sources, in the order they are tried:
- `layout: arsc`: a folder of ARSC split files (`<domain>.<tK>.<split>`), read into columns
  text, label (0/1), domain, task, split by `metalearn.data.reviews.read_arsc`;
- `data_files`: local CSV / TSV / JSON Lines / Parquet files (a path, a glob, a list, or a
  mapping split name -> files), opened by `datasets.load_dataset` with the builder their
  extension names (or `path` when it names one: csv, json, parquet);
- `path` a folder written by `save_to_disk`: `datasets.load_from_disk`;
- any other `path`: a Hub dataset name (`config_name` picks its configuration), for
  `datasets.load_dataset`, which needs the network the first time.

A source with several splits (a DatasetDict) becomes one Dataset with a `SPLIT_COLUMN` naming
each row's split, so per-family train/dev/test splits survive.
"""
from __future__ import annotations

import glob
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import (
    Dataset,
    DatasetDict,
    concatenate_datasets,
    load_dataset,
    load_from_disk,
)

from metalearn.data.reviews import arsc_files, read_arsc
from metalearn.data.text_files import check_text_file

log = logging.getLogger(__name__)
SPLIT_COLUMN = "_source_split"  # added when the source comes in several splits
LAYOUTS = (None, "arsc")
BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
SAVED_MARKERS = ("dataset_info.json", "dataset_dict.json", "state.json")


@dataclass(frozen=True)
class TextSource:
    """Where a text dataset comes from; `open()` reads it, `files()` lists what keys its cache."""

    path: str | None = None
    data_files: str | Sequence[str] | Mapping[str, Any] | None = None
    config_name: str | None = None
    layout: str | None = None
    cache_dir: Path | None = None  # datasets' own Arrow cache for load_dataset

    def check(self) -> None:
        """Errors a source can be told before anything is read (names the key)."""
        if self.layout not in LAYOUTS:
            raise ValueError(f"data.layout must be null or one of {[x for x in LAYOUTS if x]}, "
                             f"got {self.layout!r}")
        if self.layout == "arsc":
            if not self.path or not Path(self.path).expanduser().is_dir():
                raise FileNotFoundError(f"data.layout=arsc needs data.path to be a folder of ARSC "
                                        f"files; {self.path!r} is not a folder")
            return
        if self.data_files is not None:
            # every file exists, has a known extension, and is not empty or broken
            for files in self.file_map().values():
                for path in files:
                    check_text_file(path)
            return
        if not self.path:
            raise ValueError("data.data_files or data.path must name the data: CSV / JSON Lines / "
                             "Parquet files, a folder saved with save_to_disk, or a Hub dataset")

    def file_map(self) -> dict[str | None, list[Path]]:
        """data_files as {split or None: existing files}; globs expanded, sorted."""
        raw = self.data_files
        items = raw.items() if isinstance(raw, Mapping) else [(None, raw)]
        out: dict[str | None, list[Path]] = {}
        for split, spec in items:
            specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
            files: list[Path] = []
            for s in specs:
                s = str(Path(str(s)).expanduser())
                found = sorted(glob.glob(s)) if glob.has_magic(s) else [s]
                if not found or not all(Path(f).is_file() for f in found):
                    raise FileNotFoundError(f"data.data_files: no such file {s!r}")
                files += [Path(f) for f in found]
            if not files:
                raise FileNotFoundError(f"data.data_files{f'.{split}' if split else ''} is empty")
            out[split] = files
        self.builder(out)
        return out

    def builder(self, file_map: dict[str | None, list[Path]]) -> str:
        """The `load_dataset` builder: `path` where it names one, else the files' extension."""
        if self.path in set(BUILDERS.values()):
            return self.path
        kinds = {BUILDERS.get(p.suffix.lower()) for files in file_map.values() for p in files}
        if None in kinds or len(kinds) != 1:
            names = sorted({p.suffix or p.name for fs in file_map.values() for p in fs})
            raise ValueError(f"data.data_files: cannot tell the format from {names}; use one of "
                             f"{sorted(BUILDERS)} files, or set data.path to csv, json or parquet")
        return kinds.pop()

    def saved_folder(self) -> Path | None:
        """`path` if it is a folder written by `save_to_disk`."""
        if not self.path:
            return None
        folder = Path(self.path).expanduser()
        if folder.is_dir() and any((folder / m).exists() for m in SAVED_MARKERS):
            return folder
        return None

    def files(self) -> list[Path] | None:
        """The local files the data comes from (their bytes key the cache); None for the Hub."""
        if self.layout == "arsc":
            return arsc_files(Path(self.path).expanduser())
        if self.data_files is not None:
            return [p for files in self.file_map().values() for p in files]
        folder = self.saved_folder()
        if folder is not None:
            return sorted(p for p in folder.rglob("*") if p.is_file())
        return None

    def open(self) -> tuple[Dataset, str | None]:
        """The data as one Dataset, and the column naming each row's split (None: no splits)."""
        self.check()
        if self.layout == "arsc":
            return read_arsc(Path(self.path).expanduser()), None
        cache = None if self.cache_dir is None else str(self.cache_dir / "hf_datasets")
        if self.data_files is not None:
            file_map = self.file_map()
            kind = self.builder(file_map)
            files = ({k: [str(p) for p in v] for k, v in file_map.items()}
                     if None not in file_map else [str(p) for p in file_map[None]])
            extra = {"delimiter": "\t"} if all(
                p.suffix.lower() == ".tsv" for fs in file_map.values() for p in fs) else {}
            try:
                data = load_dataset(kind, data_files=files, cache_dir=cache, **extra)
            except (ValueError, TypeError, OSError) as exc:  # pyarrow/pandas parse errors
                raise ValueError(f"data.data_files: cannot read {self.data_files!r} as {kind}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                                 ) from exc
            return as_one(data)
        folder = self.saved_folder()
        if folder is not None:
            return as_one(load_from_disk(str(folder)))
        try:
            data = load_dataset(self.path, self.config_name, cache_dir=cache)
        except (ConnectionError, OSError, ValueError) as exc:  # offline, unknown name
            raise ValueError(
                f"data.path {self.path!r} is not a local file or saved dataset, and the Hub could "
                f"not give it ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                f"); for local files set data.data_files") from exc
        return as_one(data)


def as_one(data: Dataset | DatasetDict) -> tuple[Dataset, str | None]:
    """A Dataset as it is; a DatasetDict of one split as that split; of several, concatenated
    with `SPLIT_COLUMN` naming each row's split (in the dict's order)."""
    if isinstance(data, Dataset):
        return data, None
    names = list(data.keys())
    if len(names) == 1:
        return data[names[0]], None
    parts = [data[n].add_column(SPLIT_COLUMN, [n] * len(data[n])) for n in names]
    return concatenate_datasets(parts), SPLIT_COLUMN
