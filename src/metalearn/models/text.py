"""A Hugging Face encoder with a mean-pooled classification head, split for fast adaptation.

The lower encoder layers form the frozen trunk (run once per episode); the top
`trainable_layers` layers, the pooling and the head are adapted. `trainable_layers: all`
adapts the whole encoder through the model's own forward (any AutoModel works then).
`skip_padding` runs a batch's reviews in groups of like length instead of padded to the longest
(models/lengths.py): the same outputs up to float rounding, for fewer tokens' compute.
`cache_trunk` keeps the lower layers' outputs on the meta-validation episodes for the next check
(models/trunk_cache.py).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn
from transformers import AutoConfig, AutoModel
from transformers.masking_utils import create_bidirectional_mask

from metalearn.models.lengths import checked_setting, in_length_groups, skips_padding
from metalearn.models.pretrained import resolve_pretrained
from metalearn.models.split import SplitModel
from metalearn.models.top import Top
from metalearn.models.trunk_cache import checked_setting as checked_cache_setting


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors that are not padding."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # [B, T, 1]
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)  # [B, H]


def run_layers(layers: nn.ModuleList, hidden: torch.Tensor, mask4d: Any) -> torch.Tensor:
    for layer in layers:
        out = layer(hidden, mask4d)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


def bidirectional_mask(config: Any, hidden: torch.Tensor, mask: torch.Tensor) -> Any:
    """The attention mask the encoder's layers take (None where nothing is masked)."""
    return create_bidirectional_mask(config=config, inputs_embeds=hidden, attention_mask=mask)


class LowerLayers(nn.Module):
    """Embeddings plus the first encoder layers; returns what the top layers need."""

    def __init__(self, base: nn.Module, n_layers: int, skip_padding: bool | str = "auto") -> None:
        super().__init__()
        self.config = base.config
        self.embeddings = base.embeddings
        self.layers = nn.ModuleList(list(base.encoder.layer)[:n_layers])
        self.skip_padding = skip_padding

    def run(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Hidden states [B, T, H] of the padded batch `input_ids` [B, T]."""
        hidden = self.embeddings(input_ids=input_ids)  # [B, T, H]
        return run_layers(self.layers, hidden, bidirectional_mask(self.config, hidden, mask))

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, Any]:
        ids, mask = x["input_ids"], x["attention_mask"]
        if not skips_padding(self.skip_padding, ids):
            return {"hidden": self.run(ids, mask), "attention_mask": mask}
        # Each group's states padded back to the batch's width (zeros there: the mask hides them).
        width = ids.shape[1]
        hidden = in_length_groups(
            lambda i, m: nn.functional.pad(self.run(i, m), (0, 0, 0, width - i.shape[1])),
            mask, ids)
        return {"hidden": hidden, "attention_mask": mask}


class UpperLayers(Top):
    """The adapted top encoder layers, mean pooling and a linear head."""

    def __init__(self, layers: list[nn.Module], config: Any, num_labels: int,
                 dropout: float, skip_padding: bool | str = "auto") -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(config.hidden_size, num_labels)
        self.skip_padding = skip_padding

    def pooled(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled output [B, H] of the top layers for trunk states [B, T, H]."""
        out = run_layers(self.layers, hidden, bidirectional_mask(self.config, hidden, mask))
        return mean_pool(out, mask)

    def embed(self, f: dict[str, Any]) -> torch.Tensor:
        """The pooled representation the head reads (ANIL adapts, ProtoNets compare it)."""
        hidden, mask = f["hidden"], f["attention_mask"]
        if skips_padding(self.skip_padding, hidden):
            return self.dropout(in_length_groups(self.pooled, mask, hidden))
        return self.dropout(self.pooled(hidden, mask))  # [B, H]


class WholeEncoder(Top):
    """The full encoder, mean pooling and a linear head: for adapting every layer."""

    def __init__(self, base: nn.Module, hidden_size: int, num_labels: int, dropout: float,
                 skip_padding: bool | str = "auto") -> None:
        super().__init__()
        self.encoder = base
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_labels)
        self.skip_padding = skip_padding

    def pooled(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled encoder output [B, H] of a padded batch."""
        return mean_pool(self.encoder(input_ids=input_ids, attention_mask=mask).last_hidden_state,
                         mask)

    def embed(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled representation the head reads."""
        ids, mask = x["input_ids"], x["attention_mask"]
        if skips_padding(self.skip_padding, ids):
            return self.dropout(in_length_groups(self.pooled, mask, ids))
        return self.dropout(self.pooled(ids, mask))  # [B, H]


class TextClassifier(SplitModel):
    """An AutoModel encoder (default all-MiniLM-L6-v2, offline) with a pooled head."""

    def __init__(
        self,
        pretrained: str = "all-MiniLM-L6-v2",
        num_labels: int = 2,
        trainable_layers: int | str = 1,
        dropout: float | None = None,
        random_init: bool = False,
        config_overrides: dict | None = None,
        skip_padding: bool | str = "auto",
        cache_trunk: bool | str = "auto",
    ) -> None:
        skip_padding = checked_setting(skip_padding)
        cache_trunk = checked_cache_setting(cache_trunk)
        path = resolve_pretrained(pretrained)
        overrides = dict(config_overrides or {})
        if dropout is not None:
            overrides.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
        config = AutoConfig.from_pretrained(path, **overrides)
        base = AutoModel.from_config(config) if random_init else AutoModel.from_pretrained(
            path, config=config)
        if getattr(base, "pooler", None) is not None:
            base.pooler = None  # mean pooling instead; an unused pooler breaks DDP
        head_dropout = config.hidden_dropout_prob if dropout is None else dropout
        hidden = config.hidden_size
        if trainable_layers == "all":
            super().__init__(top=WholeEncoder(base, hidden, num_labels, head_dropout, skip_padding),
                             cache_trunk=cache_trunk)
            return
        layers = getattr(getattr(base, "encoder", None), "layer", None)
        if not isinstance(layers, nn.ModuleList) or not hasattr(base, "embeddings"):
            raise ValueError(
                f"cannot split {type(base).__name__} into frozen and adapted layers "
                f"(no .embeddings / .encoder.layer); use model.trainable_layers=all")
        n = len(layers)
        if not isinstance(trainable_layers, int) or not 0 <= trainable_layers <= n:
            raise ValueError(
                f"model.trainable_layers must be an integer in [0, {n}] or 'all', "
                f"got {trainable_layers!r}")
        top = UpperLayers(list(layers)[n - trainable_layers:], base.config, num_labels, head_dropout,
                          skip_padding)
        super().__init__(top=top, trunk=LowerLayers(base, n - trainable_layers, skip_padding),
                         cache_trunk=cache_trunk)
