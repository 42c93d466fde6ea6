"""What the layer builder offers: each layer kind model=layers allows (models/layers.py's
allowlist) with the arguments its torch class takes: the required ones, and a few optional
ones people set often. The builder only writes specs; the validator checks them."""
from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from metalearn.models.layers import ALLOWED_LAYERS, AUTO_DIMS

SHOWN_OPTIONAL = ("stride", "padding", "p", "mode", "padding_idx", "negative_slope", "start_dim", "end_dim",
                  "bias")
NOT_ARGUMENTS = ("self", "device", "dtype", "_weight", "_freeze")


@dataclass(frozen=True)
class LayerArg:
    """One argument input of a layer kind."""

    name: str
    required: bool
    placeholder: str  # the default, "auto", or "required"
    auto: bool  # may be written auto (a size that follows from the previous layer)


@dataclass(frozen=True)
class LayerKind:
    """A layer kind and the argument inputs the builder shows for it."""

    name: str
    args: tuple[LayerArg, ...]


@lru_cache(maxsize=1)
def layer_kinds() -> tuple[LayerKind, ...]:
    """Every allowed layer kind, by name."""
    kinds = []
    for name, cls in sorted(ALLOWED_LAYERS.items()):
        args = []
        for param in inspect.signature(cls).parameters.values():
            if param.name in NOT_ARGUMENTS or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                continue
            required = param.default is inspect.Parameter.empty
            if not required and param.name not in SHOWN_OPTIONAL:
                continue
            auto = param.name in AUTO_DIMS
            placeholder = "auto" if auto else "required" if required else json.dumps(param.default)
            args.append(LayerArg(param.name, required, placeholder, auto))
        kinds.append(LayerKind(name, tuple(args)))
    return tuple(kinds)


def spec_text(spec: Any) -> str:
    """A spec as one line, e.g. Linear(in_features=auto, out_features=64)."""
    if not isinstance(spec, Mapping):
        return json.dumps(spec)
    args = ", ".join(f"{k}={_arg_text(v)}" for k, v in spec.items() if k != "name")
    return f"{spec.get('name', '?')}({args})"


def _arg_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
