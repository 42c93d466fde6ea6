"""A checkpoint's algorithm module rebuilt from its run's config, with the checkpoint's weights,
as `train=false ckpt_path=...` rebuilds it for a meta-test: the config builds objective, model
and algorithm; Lightning's load order follows (the module's `on_load_checkpoint`, then every
weight, strictly); the file is read with `weights_only=True`, so it runs no code.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import torch
from hydra.utils import get_class
from omegaconf import OmegaConf
from torch import nn

from metalearn.algorithms.episodic import EpisodicModule
from metalearn.algorithms.protonet import ProtoNet
from metalearn.inference.errors import CheckpointError
from metalearn.inference.inputs import Inputs, inputs_of
from metalearn.inference.run_checkpoint import RunCheckpoint
from metalearn.instantiate import build
from metalearn.models.top import Top
from metalearn.objectives import Objective, require_served

POOLED_HEAD = "pooled_head.weight"  # algorithm=finetune's classifier over the meta-train classes
# What a run config read from a file or the registry may instantiate: a config beside a
# checkpoint is data, and building a `_target_` runs code (an import, a call).
TRUSTED_TARGETS = ("metalearn.", "torch.optim.")
BUILT = ("objective", "model", "algorithm")


@dataclass
class LoadedCheckpoint:
    """A module ready to adapt, and how its examples become inputs.

    head_outputs: how many classes a task may have (the trained head's outputs); None where
    the trained weights hold no N-way head (ProtoNets compare embeddings; fine-tuning with a
    pooled classifier starts a fresh head per task), so any number will do. `lock` serializes
    predictions on this module (one adapts at a time: `predict` swaps its objective).
    """

    run: RunCheckpoint
    learner: EpisodicModule
    inputs: Inputs
    head_outputs: int | None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def objective(self) -> Objective:
        return self.learner.objective

    @property
    def description(self) -> str:
        return describe(self.run, self.inputs)


def describe(run: RunCheckpoint, inputs: Inputs) -> str:
    """The checkpoint as messages name it: `ckpt=12 (a text model, data ReviewEpisodes)`."""
    kind = {"text": "a text", "image": "an image", "numbers": "a numbers"}[inputs.kind]
    return f"ckpt={run.reference} ({kind} model, data {run.data_target})"


def load_checkpoint(run: RunCheckpoint, trusted: tuple[str, ...] = ()) -> LoadedCheckpoint:
    """The module `run`'s checkpoint holds, in eval mode on the CPU. Every class its config
    names is checked first (`check_targets`; `trusted`: more module prefixes allowed)."""
    check_targets(run, trusted)
    cfg = OmegaConf.create(run.config)
    objective = build(cfg.objective)
    require_served(objective, get_class(cfg.algorithm._target_), "algorithm")
    learner = build(cfg.algorithm, model=build(cfg.model), objective=objective)
    checkpoint = torch.load(run.path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"ckpt={run.reference}: {run.path} holds no state_dict (not a "
                              f"Lightning checkpoint)")
    pooled = POOLED_HEAD in state and hasattr(learner, "add_pooled_head")
    if pooled:  # as FineTune.setup adds it where episodes relabel their classes
        learner.add_pooled_head(int(state[POOLED_HEAD].shape[0]))
    learner.on_load_checkpoint(checkpoint)
    try:
        learner.load_state_dict(checkpoint["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"ckpt={run.reference}: its weights do not fit the model its run "
                              f"config builds ({str(exc).splitlines()[0]})") from exc
    learner.eval()
    free = pooled or isinstance(learner, ProtoNet)
    return LoadedCheckpoint(run=run, learner=learner, inputs=inputs_of(run.config),
                            head_outputs=None if free else head_width(learner.model.top))


def check_targets(run: RunCheckpoint, trusted: tuple[str, ...] = ()) -> None:
    """Refuse a run config whose objective, model or algorithm names a class outside
    TRUSTED_TARGETS (and `trusted`), naming the key."""
    allowed = TRUSTED_TARGETS + tuple(trusted)

    def walk(node: object, key: str) -> None:
        if isinstance(node, dict):
            target = node.get("_target_")
            if target is not None and not str(target).startswith(allowed):
                raise CheckpointError(
                    f"ckpt={run.reference}: its run config names {key}._target_={target}; a "
                    f"checkpoint's config may name {', '.join(p + '*' for p in TRUSTED_TARGETS)} "
                    f"only (trust=<module prefix> allows a module of your own)")
            for k, v in node.items():
                walk(v, f"{key}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{key}[{i}]")

    for section in BUILT:
        walk(run.config.get(section), section)


def head_width(top: nn.Module) -> int | None:
    """The outputs of a classifier's head: `Top.head`, else the top's last linear layer."""
    head = top.head if isinstance(top, Top) else None
    if head is None:
        linears = [m for m in top.modules() if isinstance(m, nn.Linear)]
        head = linears[-1] if linears else None
    return getattr(head, "out_features", None)
