"""Models declared as data: a list of torch.nn layer specs, built from an allowlist only.

A spec is a mapping such as `{name: Conv2d, out_channels: 16, kernel_size: 5}`. Sizes that
follow from the previous layer may be written `auto` (in_features, in_channels, num_features,
normalized_shape), and `num_labels` / `vocab_size` stand for the model's values. The last layer
must give one example's output: `[num_labels]` logits for a classifier, else `output_shape`
(`[1]` for a scalar regression such as the sinusoid). Specs are
checked on the meta device first (shapes only, no memory), so a bad or huge one is a clear
LayerSpecError before anything is allocated. Nothing in a spec is ever evaluated as code.
"""
from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from metalearn.models.split import SplitModel
from metalearn.models.top import Top

ALLOWED_LAYERS: dict[str, type[nn.Module]] = {
    name: getattr(nn, name)
    for name in (
        "Linear", "Identity", "Flatten", "Unflatten", "Dropout", "Dropout1d",
        "Dropout2d", "Embedding", "EmbeddingBag",
        "Conv1d", "Conv2d", "Conv3d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
        "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
        "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d",
        "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Mish", "Tanh", "Sigmoid", "Softplus",
        "Hardswish", "PReLU",
    )
}
# "auto" arguments and the input dimension they copy.
AUTO_DIMS = {"in_features": -1, "in_channels": 1, "num_features": 1, "normalized_shape": -1}
PLACEHOLDERS = ("num_labels", "vocab_size")
TOKEN_LAYERS = ("Embedding", "EmbeddingBag")
MAX_LAYERS = 64
MAX_PARAMETERS = 50_000_000
# Activations per example, in elements: any one layer's output, and all layers' together (what
# a backward pass keeps). 2^21 floats are 8 MB; a 28 px Conv4 needs 5e4 per layer.
MAX_ACTIVATION = 2**21
MAX_ACTIVATIONS = 2**23


class LayerSpecError(ValueError):
    """A layer spec list that cannot be built; the message names the layer and the reason."""


def check_layers(
    specs: Sequence[Mapping[str, Any]],
    input_shape: Sequence[int],
    *,
    tokens: bool = False,
    values: Mapping[str, int] | None = None,
    max_parameters: int = MAX_PARAMETERS,
) -> tuple[list[tuple[type[nn.Module], dict[str, Any]]], tuple[int, ...]]:
    """Check specs on the meta device: the (class, arguments) per layer and the output shape.

    Parameters and activations are both bounded: a layer with few parameters can still make a
    huge output (a 1x1 convolution with a padding of 20,000).
    """
    specs = _plain(specs)
    if not isinstance(specs, list) or not specs:
        raise LayerSpecError("layers must be a non-empty list of layer specs")
    if len(specs) > MAX_LAYERS:
        raise LayerSpecError(f"at most {MAX_LAYERS} layers, got {len(specs)}")
    probe = torch.zeros(
        2, *_shape(input_shape), dtype=torch.long if tokens else torch.float32, device="meta"
    )
    plan, total, activations = [], 0, 0
    for index, spec in enumerate(specs):
        kwargs = _kwargs(spec, f"layer {index}")
        cls = ALLOWED_LAYERS[kwargs.pop("name")]
        where = f"layer {index} ({cls.__name__})"
        kwargs = _resolve(kwargs, tuple(probe.shape), values or {}, where)
        with torch.device("meta"):
            shadow = _construct(cls, kwargs, where)
        total += sum(p.numel() for p in shadow.parameters())
        if total > max_parameters:
            raise LayerSpecError(f"{where}: the model would have over {max_parameters:,} parameters")
        probe = _forward(shadow.eval(), probe, where)
        size = probe[0].numel()  # one example's output
        activations += size
        if size > MAX_ACTIVATION:
            raise LayerSpecError(f"{where}: its output of shape {list(probe.shape[1:])} has {size:,} "
                                 f"values per example; at most {MAX_ACTIVATION:,}")
        if activations > MAX_ACTIVATIONS:
            raise LayerSpecError(f"{where}: the layers up to here keep {activations:,} values per "
                                 f"example for the backward pass; at most {MAX_ACTIVATIONS:,}")
        plan.append((cls, kwargs))
    return plan, tuple(probe.shape[1:])


def build_layers(
    specs: Sequence[Mapping[str, Any]],
    input_shape: Sequence[int],
    *,
    tokens: bool = False,
    values: Mapping[str, int] | None = None,
    max_parameters: int = MAX_PARAMETERS,
) -> LayerStack:
    """An nn.Sequential from specs for inputs of input_shape (one example, no batch dim)."""
    plan, _ = check_layers(
        specs, input_shape, tokens=tokens, values=values, max_parameters=max_parameters
    )
    return LayerStack(*[_construct(cls, kwargs, cls.__name__) for cls, kwargs in plan])


class LayerStack(nn.Sequential, Top):
    """The built layers, run in order; the last is the head, the ones before it `embed`."""

    @property
    def head(self) -> nn.Module:
        return self[-1]

    def embed(self, x: Any) -> torch.Tensor:
        for layer in list(self)[:-1]:
            x = layer(x)
        return x


class TokenIds(nn.Module):
    """Takes the input_ids out of a tokenized batch (the trunk of a token model)."""

    def forward(self, x: Mapping[str, torch.Tensor] | torch.Tensor) -> torch.Tensor:
        return x["input_ids"] if isinstance(x, Mapping) else x


def check_model(
    layers: Sequence[Mapping[str, Any]],
    num_labels: int | None = 2,
    input: str = "tokens",  # noqa: A002 (the config key's name)
    input_shape: Sequence[int] = (16,),
    output_shape: Sequence[int] | None = None,
    vocab_size: int | str = "auto",
    pretrained: str | None = "all-MiniLM-L6-v2",
) -> dict[str, int]:
    """Check a layer model's arguments without allocating it; return the placeholder values.

    output_shape: one example's output, when the model is not a classifier over num_labels
    classes (null: `[num_labels]`).
    """
    if input not in ("tokens", "tensor"):
        raise LayerSpecError(f"input must be 'tokens' or 'tensor', got {input!r}")
    classifier = output_shape is None
    if classifier and (isinstance(num_labels, bool) or not isinstance(num_labels, int)
                       or num_labels < 1):
        raise LayerSpecError(f"num_labels must be a positive integer, got {num_labels!r}")
    expected = (num_labels,) if classifier else _shape(output_shape, "output_shape")
    first = (_plain(layers) or [{}])[0]
    name = first.get("name") if isinstance(first, Mapping) else None
    if input == "tokens" and name in ALLOWED_LAYERS and name not in TOKEN_LAYERS:
        raise LayerSpecError(
            f"layer 0 ({name}): token ids come in, so the first layer must be one of "
            f"{', '.join(TOKEN_LAYERS)} (or set model.input=tensor)"
        )
    values = {"num_labels": num_labels} if isinstance(num_labels, int) else {}
    if _mentions(layers, "vocab_size"):
        values["vocab_size"] = (
            tokenizer_vocab_size(pretrained) if vocab_size == "auto" else int(vocab_size)
        )
    _, out = check_layers(layers, input_shape, tokens=input == "tokens", values=values)
    if out != expected:
        raise LayerSpecError(
            f"the last layer gives outputs of shape {list(out)} per example; "
            + (f"a classifier must end in [num_labels] = [{num_labels}]" if classifier
               else f"the model must end in output_shape = {list(expected)}")
        )
    return values


class LayerModel(SplitModel):
    """A classifier or regressor whose adapted part is built from layer specs (see the module
    docstring)."""

    def __init__(
        self,
        layers: Sequence[Mapping[str, Any]],
        num_labels: int | None = 2,
        input: str = "tokens",  # noqa: A002 (the config key's name)
        input_shape: Sequence[int] = (16,),
        output_shape: Sequence[int] | None = None,
        vocab_size: int | str = "auto",
        pretrained: str | None = "all-MiniLM-L6-v2",
    ) -> None:
        values = check_model(layers, num_labels, input, input_shape, output_shape, vocab_size,
                             pretrained)
        tokens = input == "tokens"
        top = build_layers(layers, input_shape, tokens=tokens, values=values)
        super().__init__(top=top, trunk=TokenIds() if tokens else None)


@lru_cache(maxsize=8)
def tokenizer_vocab_size(pretrained: str | None) -> int:
    """The vocabulary size of the tokenizer the data uses (for vocab_size: auto)."""
    if not pretrained:
        raise LayerSpecError("vocab_size: auto needs model.pretrained (the tokenizer) to be set")
    from transformers import AutoTokenizer

    from metalearn.models.pretrained import resolve_pretrained

    return len(AutoTokenizer.from_pretrained(resolve_pretrained(pretrained)))


def _plain(value: Any) -> Any:
    """OmegaConf containers as plain lists and dicts."""
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def _shape(value: Sequence[int], key: str = "input_shape") -> tuple[int, ...]:
    """One example's shape from the config key `key`, checked."""
    shape = _plain(value)
    if not isinstance(shape, (list, tuple)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 65536 for d in shape
    ):
        raise LayerSpecError(f"{key} must be a list of positive integers, got {shape!r}")
    if math.prod(shape) > 10_000_000:
        raise LayerSpecError(f"{key} {list(shape)} is too large")
    return tuple(shape)


def _kwargs(spec: Any, where: str) -> dict[str, Any]:
    """The spec as keyword arguments, with a known layer name and plain JSON-like values."""
    if not isinstance(spec, Mapping):
        raise LayerSpecError(f"{where}: a layer spec is a mapping like {{name: Linear, ...}}, got {spec!r}")
    kwargs = dict(spec)
    name = kwargs.get("name")
    if name not in ALLOWED_LAYERS:
        raise LayerSpecError(
            f"{where}: unknown or disallowed layer {name!r}; allowed: {', '.join(sorted(ALLOWED_LAYERS))}"
        )
    for key, value in kwargs.items():
        if not _is_plain(value):
            raise LayerSpecError(f"{where}: {key} must be a number, string, bool or list, got {str(value)[:80]!r}")
    return kwargs


def _is_plain(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    return value is None or isinstance(value, (bool, int, float, str))


def _mentions(specs: Any, word: str) -> bool:
    return any(isinstance(s, Mapping) and word in s.values() for s in _plain(specs) or [])


def _resolve(kwargs: dict[str, Any], shape: tuple[int, ...], values: Mapping[str, int], where: str) -> dict[str, Any]:
    """Replace auto sizes from the incoming shape and placeholders by the model's values."""
    out = {}
    for key, value in kwargs.items():
        if value == "auto":
            if key not in AUTO_DIMS:
                raise LayerSpecError(f"{where}: {key} cannot be auto (only {', '.join(AUTO_DIMS)})")
            if len(shape) < 2:
                raise LayerSpecError(f"{where}: {key}: auto needs an input with a feature dimension")
            value = shape[AUTO_DIMS[key]]
        elif isinstance(value, str) and value in PLACEHOLDERS:
            if value not in values:
                raise LayerSpecError(f"{where}: {key}: {value} is not known here")
            value = values[value]
        out[key] = value
    return out


def _construct(cls: type[nn.Module], kwargs: dict[str, Any], where: str) -> nn.Module:
    """cls(**kwargs), with unknown arguments and torch's own complaints as LayerSpecError."""
    params = inspect.signature(cls).parameters
    unknown = sorted(k for k in kwargs if k not in params or k in ("device", "dtype", "_weight"))
    if unknown:
        allowed = sorted(k for k in params if k not in ("self", "device", "dtype", "_weight"))
        raise LayerSpecError(f"{where}: unknown arguments {unknown}; {cls.__name__} takes {allowed}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise LayerSpecError(f"{where}: {exc}") from exc


def _forward(module: nn.Module, probe: torch.Tensor, where: str) -> torch.Tensor:
    """Run the shape probe through module, turning shape mismatches into LayerSpecError."""
    try:
        with torch.no_grad():
            return module(probe)
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise LayerSpecError(f"{where}: does not fit its input of shape {list(probe.shape[1:])}: {exc}") from exc
