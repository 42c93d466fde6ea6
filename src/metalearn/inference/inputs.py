"""How a checkpoint's data turned examples into model inputs, read from its run's data config,
so a user's examples become the very tensors meta-test episodes held.

Text (data=hf_text, data=amazon/arsc): the run's tokenizer, truncated to its `max_length`,
padded per batch (data/tokenized.py, data/batches.py). Images (data=image_folder, omniglot):
decoded to the run's size and channels, inverted where it inverted, scaled to [0, 1]
(data/image_files.py). Numbers (data=sinusoid): float columns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from metalearn.data.batches import pad_token_rows
from metalearn.data.image_files import decode
from metalearn.models.pretrained import resolve_pretrained


@dataclass(frozen=True)
class TextInputs:
    """Texts through the run's tokenizer; the columns a support/query file names them by."""

    tokenizer: str
    max_length: int
    text_column: str
    label_column: str
    kind: str = "text"

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids and mask [B, T], padded to this batch's longest text."""
        tok = tokenizer_of(self.tokenizer)
        rows = tok(texts, truncation=True, max_length=self.max_length)["input_ids"]
        return pad_token_rows(rows, tok.pad_token_id if tok.pad_token_id is not None else 0)


@dataclass(frozen=True)
class ImageInputs:
    """Image files decoded as the run's data source decoded them."""

    image_size: int
    channels: int
    invert: bool
    kind: str = "image"

    def encode(self, files: list[Path]) -> torch.Tensor:
        """Float images [B, C, S, S] in [0, 1]."""
        images = np.stack([decode(f, self.image_size, self.channels, self.invert) for f in files])
        return torch.from_numpy(images.astype(np.float32) / 255.0)


@dataclass(frozen=True)
class NumberInputs:
    """Rows of numbers: the model's input columns and the target column (regression)."""

    input_columns: tuple[str, ...]
    label_column: str
    kind: str = "numbers"

    def encode(self, rows: list[list[float]]) -> torch.Tensor:
        """Float inputs [B, D]."""
        return torch.tensor(rows, dtype=torch.float32)


Inputs = TextInputs | ImageInputs | NumberInputs


def inputs_of(config: dict[str, Any]) -> Inputs:
    """The inputs of the run whose config sections are `config` (run_checkpoint.SECTIONS)."""
    data, model = config["data"], config.get("model") or {}
    if data.get("tokenizer"):
        return TextInputs(tokenizer=str(data["tokenizer"]), max_length=int(data.get("max_length", 128)),
                          text_column=str(data.get("text_column", "text")),
                          label_column=str(data.get("label_column", "label")))
    if data.get("image_size"):
        # Omniglot has no channels / invert keys: grayscale, ink = 1 (data/omniglot.py to_ink)
        return ImageInputs(image_size=int(data["image_size"]), channels=int(data.get("channels", 1)),
                           invert=bool(data.get("invert", True)))
    shape = model.get("input_shape") or [1]
    width = math.prod(int(d) for d in shape)
    names = ("x",) if width == 1 else tuple(f"x{i}" for i in range(1, width + 1))
    return NumberInputs(input_columns=names, label_column="y")


@lru_cache(maxsize=4)
def tokenizer_of(name: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_pretrained(name))
