"""Tokenize a text Dataset once and keep the result on disk (data/disk_cache.py)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from datasets import Dataset

from metalearn.data.disk_cache import cached_dataset

log = logging.getLogger(__name__)


def tokenized_dataset(
    read: Callable[[], Dataset],
    tokenizer,
    max_length: int,
    target: Path,
) -> tuple[Dataset, bool]:
    """The tokenized dataset saved at `target`, or read + tokenize (batched `map`) + save it.

    Returns the dataset and whether it was tokenized now (False: loaded from the cache).
    Sequences are truncated to `max_length` but not padded: padding happens per batch.
    """
    def encode(batch: dict) -> dict:
        enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def build() -> Dataset:
        raw = read()
        log.info("tokenizing %d texts (max_length=%d) once; cache: %s",
                 len(raw), max_length, target)
        return raw.map(encode, batched=True, batch_size=1000, remove_columns=["text"])

    return cached_dataset(target, build)
