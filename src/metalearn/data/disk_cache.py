"""Datasets built once and kept on disk, named by a digest of what produced them.

Shared by the tokenized reviews and the decoded Omniglot images. Safe when several runs
(a sweep, two queues) build the same entry at once: each writes its own temporary folder
and the first rename wins.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from datasets import Dataset, load_from_disk

log = logging.getLogger(__name__)
CACHE_VERSION = 2  # 2: keyed by file contents (1 used sizes and mtimes)


def digest(files: list[Path], *settings: object) -> str:
    """A digest of the files' names and bytes and the settings that shaped the dataset.

    Contents, not modification times: a data folder copied again with the same bytes keeps
    its cache (here `../shared` is re-copied every session; mtimes made every run re-tokenize).
    """
    h = hashlib.sha1(json.dumps([CACHE_VERSION, [str(s) for s in settings]]).encode())
    for path in files:
        h.update(path.name.encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def cached_dataset(target: Path, build: Callable[[], Dataset]) -> tuple[Dataset, bool]:
    """The dataset saved at `target`, or `build()` saved there; and whether it was built now."""
    if (target / "dataset_info.json").exists():
        log.info("%s from cache %s", target.name, target.parent)
        return load_from_disk(str(target)), False
    data = build()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{target.name}-{os.getpid()}"
    data.save_to_disk(str(tmp))
    try:
        tmp.rename(target)  # atomic: a half-written cache is never read
    except OSError:  # another process saved it first: theirs holds the same rows
        if not (target / "dataset_info.json").exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return load_from_disk(str(target)), True
