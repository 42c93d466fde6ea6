"""A meta-learned text checkpoint as a Hugging Face model folder that `transformers` alone loads.

The encoder (the frozen lower layers and the meta-learned top layers, joined back into one
`AutoModel`) is written by `save_pretrained` with its config, the run's tokenizer beside it
(its `model_max_length` set to the run's `max_length`, so truncation is the run's), the head as
`head.safetensors` (weight [C, H], bias [C] over the mean-pooled last hidden state), what the
head and pooling are in `metalearn.json`, and a model card (`model_card`). The encoder has no
pooler (metalearn mean-pools): load it with `AutoModel.from_pretrained(DIR,
add_pooling_layer=False)`, or without that flag and ignore the pooler it adds, untrained.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn
from transformers import AutoModel, AutoTokenizer

from metalearn.data.review_datamodule import CLASSES as REVIEW_CLASSES
from metalearn.inference.errors import CheckpointError
from metalearn.inference.inputs import TextInputs
from metalearn.inference.loading import LoadedCheckpoint
from metalearn.inference.model_card import model_card
from metalearn.models.pretrained import resolve_pretrained
from metalearn.models.text import LowerLayers, TextClassifier, UpperLayers, WholeEncoder

HEAD_FILE = "head.safetensors"
INFO_FILE = "metalearn.json"


def export_model(loaded: LoadedCheckpoint, out: Path) -> list[Path]:
    """Write the folder (made if absent; files of the same names are replaced); returns the
    files written."""
    model = loaded.learner.model
    if not isinstance(model, TextClassifier) or not isinstance(loaded.inputs, TextInputs):
        raise CheckpointError(f"{loaded.description}: export writes a Hugging Face text encoder; "
                              f"this checkpoint's model is {type(model).__name__}")
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise CheckpointError(f"out={out}: a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    encoder = hf_encoder(model)
    encoder.save_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(loaded.inputs.tokenizer),
                                              model_max_length=loaded.inputs.max_length)
    tokenizer.save_pretrained(out)
    head = model.top.head
    save_file({"weight": head.weight.detach().contiguous(), "bias": head.bias.detach().contiguous()},
              out / HEAD_FILE)
    (out / INFO_FILE).write_text(json.dumps(export_info(loaded), indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(model_card(loaded, out), encoding="utf-8")
    return sorted(p for p in out.iterdir() if p.is_file())


def hf_encoder(model: TextClassifier) -> nn.Module:
    """One `AutoModel` holding the model's encoder weights: the whole encoder as it is, or the
    frozen trunk's embeddings and layers followed by the adapted top's layers."""
    top = model.top
    if isinstance(top, WholeEncoder):
        return top.encoder
    if not isinstance(top, UpperLayers) or not isinstance(model.trunk, LowerLayers):
        raise CheckpointError(f"export: cannot join a {type(model.trunk).__name__} trunk and a "
                              f"{type(top).__name__} top into one encoder")
    base = AutoModel.from_config(top.config)
    if getattr(base, "pooler", None) is not None:
        base.pooler = None  # as TextClassifier: mean pooling, no pooler
    trunk = model.trunk
    state: dict[str, torch.Tensor] = {f"embeddings.{k}": v for k, v in trunk.embeddings.state_dict().items()}
    layers = [*trunk.layers, *top.layers]
    for i, layer in enumerate(layers):
        state.update({f"encoder.layer.{i}.{k}": v for k, v in layer.state_dict().items()})
    expected = len(base.encoder.layer)
    if len(layers) != expected:
        raise CheckpointError(f"export: {len(layers)} layers in the model, {expected} in its config")
    base.load_state_dict(state, strict=True)
    return base.eval()


def export_info(loaded: LoadedCheckpoint) -> dict[str, Any]:
    """What the folder's files mean, for a reader without metalearn."""
    run, learner = loaded.run, loaded.learner
    head = learner.model.top.head
    info: dict[str, Any] = {
        "pooling": "mean of the last hidden state over the attention mask",
        "head": {"file": HEAD_FILE, "outputs": head.out_features,
                 "logits": "pooled @ weight.T + bias"},
        "max_length": loaded.inputs.max_length,
        "algorithm": type(learner).__name__,
        "objective": loaded.objective.name,
        "checkpoint": str(run.path),
        "attempt_id": run.attempt_id,
    }
    if run.data_target == "ReviewEpisodes":
        info["head"]["labels"] = list(REVIEW_CLASSES)
    for key in ("inner_lr", "eval_inner_steps", "eval_inner_lr", "eval_adapt_check"):
        if hasattr(learner, key):
            info.setdefault("test_time_adaptation", {})[key] = getattr(learner, key)
    return info
