"""Tokenize a text Dataset once and keep the result on disk, keyed by what produced it."""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Callable

from datasets import Dataset, load_from_disk

log = logging.getLogger(__name__)
CACHE_VERSION = 1


def cache_key(files: list[Path], tokenizer_name: str, max_length: int) -> str:
    """A digest of the source files (name, size, mtime), tokenizer and max length."""
    stats = [(p.name, p.stat().st_size, int(p.stat().st_mtime)) for p in files]
    blob = json.dumps([CACHE_VERSION, stats, tokenizer_name, max_length], sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def tokenized_dataset(
    read: Callable[[], Dataset],
    tokenizer,
    max_length: int,
    cache_dir: Path,
    key: str,
) -> tuple[Dataset, bool]:
    """The tokenized dataset from the cache, or read + tokenize (batched `map`) + save it.

    Returns the dataset and whether it was tokenized now (False: loaded from the cache).
    Sequences are truncated to `max_length` but not padded: padding happens per batch.
    """
    target = cache_dir / f"reviews-{key}"
    if (target / "dataset_info.json").exists():
        log.info("tokenized reviews from cache %s", target)
        return load_from_disk(str(target)), False
    raw = read()
    log.info("tokenizing %d reviews (max_length=%d) once; cache: %s", len(raw), max_length, target)

    def encode(batch: dict) -> dict:
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    data = raw.map(encode, batched=True, batch_size=1000, remove_columns=["text"])
    tmp = cache_dir / f".tmp-{key}"
    data.save_to_disk(str(tmp))
    tmp.rename(target)  # atomic: a half-written cache is never read
    return load_from_disk(str(target)), True
