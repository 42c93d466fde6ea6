"""What an HTTP request may set: the one allowlist of config keys, each with its bounds.

A request chooses an experiment and may then change only what is declared here: the
experiment's hyperparameters, data sizes within bounds, seeds, and algorithm and model
choices. Everything else is the server's: every path, directory, file, host, URL, process
or worker count, logger, callback, the registry and Hydra's own settings. A key is settable
because it is listed, never because it is missing from a list of forbidden ones.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./&-]*$")
INT32 = 2**31 - 1


class SettingError(ValueError):
    """A value outside what its setting allows; the message says what is allowed."""


@dataclass(frozen=True)
class Setting:
    """One settable key: its kind and bounds (checked before the config is composed)."""

    kind: str  # int, float, bool, names (a list of names), choice, layers, int_or_all
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    nullable: bool = False
    max_items: int = 64

    def check(self, key: str, value: Any) -> None:
        """Raise SettingError unless value fits this setting."""
        if value is None:
            if self.nullable:
                return
            raise SettingError(f"{key} cannot be null")
        kind = self.kind
        if kind == "int_or_all" and value == "all":
            return
        if kind in ("int", "int_or_all"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingError(f"{key} must be an integer{' or all' if kind == 'int_or_all' else ''}")
            self._range(key, value)
        elif kind == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SettingError(f"{key} must be a number")
            if not math.isfinite(value):  # nan passes every comparison, so every range
                raise SettingError(f"{key} must be a finite number, got {value}")
            self._range(key, value)
        elif kind == "bool":
            if not isinstance(value, bool):
                raise SettingError(f"{key} must be true or false")
        elif kind == "choice":
            if value not in self.choices:
                raise SettingError(f"{key} must be one of {list(self.choices)}")
        elif kind == "names":
            if not isinstance(value, list) or len(value) > self.max_items or not all(
                isinstance(v, str) and NAME.match(v) and len(v) <= 64 for v in value
            ):
                raise SettingError(f"{key} must be a list of at most {self.max_items} names "
                                   "(letters, digits, _ . / & -)")
        elif kind == "layers":
            if not isinstance(value, list):
                raise SettingError(f"{key} must be a list of layer specs")
            for index, spec in enumerate(value):
                _check_numbers(f"{key}: layer {index}", spec)
        else:  # a declaration error in this file, not in the request
            raise AssertionError(f"unknown setting kind {kind!r}")

    def _range(self, key: str, value: float) -> None:
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise SettingError(f"{key}={value} is out of range [{self.low:g}, {self.high:g}]")


def _check_numbers(where: str, value: Any) -> None:
    """Every number in a layer spec finite, every integer one that torch takes (a C long
    holds 2^63, but past 2^31 no layer fits the parameter bound anyway)."""
    if isinstance(value, dict):
        for name, item in value.items():
            _check_numbers(f"{where}: {name}", item)
    elif isinstance(value, list):
        for item in value:
            _check_numbers(where, item)
    elif isinstance(value, float) and not math.isfinite(value):
        raise SettingError(f"{where} must be a finite number, got {value}")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) > INT32:
        raise SettingError(f"{where}: integers in a layer spec are at most {INT32} in size")


def _int(low: int, high: int, nullable: bool = False) -> Setting:
    return Setting("int", low, high, nullable=nullable)


def _float(low: float, high: float) -> Setting:
    return Setting("float", low, high)


BOOL = Setting("bool")

# Config groups whose option a request may choose (an existing file of the group).
GROUPS: dict[str, str] = {
    "algorithm": "the meta-learning algorithm",
    "model": "the model",
    "debug": "a debug preset such as debug=fast",
}

# Every other settable key. Sizes and counts are bounded here; the data source bounds them
# further (K + L against its smallest class, held-out groups among its groups).
SETTINGS: dict[str, Setting] = {
    "seed": _int(0, INT32),
    "tags": Setting("names", max_items=16),
    "train": BOOL,
    "test": BOOL,
    # algorithm hyperparameters
    "algorithm.inner_lr": _float(0.0, 10.0),
    "algorithm.inner_steps": _int(0, 100),
    "algorithm.eval_inner_steps": _int(0, 500),
    "algorithm.eval_inner_lr": Setting("float", 0.0, 10.0, nullable=True),
    "algorithm.first_order": BOOL,
    "algorithm.learn_inner_lr": BOOL,
    "algorithm.transductive": BOOL,
    "algorithm.eval_batch_size": _int(1, 1024),
    "algorithm.vmap_tasks": BOOL,
    "algorithm.optimizer.lr": _float(0.0, 10.0),
    "algorithm.scheduler.final_fraction": _float(0.0, 1.0),
    # data: episode sizes and counts, held-out groups, seeds
    "data.shots": _int(1, 1000),
    "data.queries": _int(1, 1000),
    "data.train_shots": _int(1, 1000, nullable=True),
    "data.train_queries": _int(1, 1000, nullable=True),
    "data.ways": _int(2, 100),
    "data.meta_batch_size": _int(1, 64),
    "data.steps_per_epoch": _int(1, 10_000),
    "data.val_episodes": _int(1, 1000),
    "data.test_episodes": _int(1, 1000),
    "data.heldout": Setting("names"),
    "data.tasks": Setting("names", nullable=True),
    "data.max_length": _int(8, 512),
    "data.eval_seed": _int(0, INT32),
    "data.split_seed": _int(0, INT32),
    "data.rotations": BOOL,
    "data.image_size": _int(8, 105),
    "data.test_set": Setting("choice", choices=("split", "lake_runs")),
    "data.test_protocol": Setting("choice", choices=("episodes", "arsc", "arsc_dev")),
    # data=hf_text and data=image_folder (docs/your_data.md): label order, head size, the split
    "data.shuffle_labels": BOOL,
    "data.num_labels": _int(2, 100),
    "data.val_groups": Setting("names", nullable=True),
    "data.groups": Setting("names", nullable=True),
    "data.test_fraction": _float(0.0, 0.9),
    "data.val_fraction": _float(0.0, 0.9),
    "data.val_row_fraction": _float(0.0, 0.9),
    "data.channels": _int(1, 3),
    "data.invert": BOOL,
    # model choices (model.layers is checked on the meta device: parameters and activations)
    "model.trainable_layers": Setting("int_or_all", 0, 64),
    "model.dropout": _float(0.0, 0.9),
    "model.random_init": BOOL,
    "model.hidden": _int(1, 512),
    "model.layers": Setting("layers"),
    # training length
    "trainer.max_steps": _int(1, 100_000),
    "trainer.limit_val_batches": _float(0.0, 1.0),
    "trainer.log_every_n_steps": _int(1, 10_000),
}


def check_setting(key: str, value: Any, settings: Mapping[str, Setting] = SETTINGS) -> None:
    """Raise SettingError unless key is settable and value within its bounds."""
    setting = settings.get(key)
    if setting is None:
        root = key.split(".", 1)[0]
        near = sorted(k for k in settings if k.split(".", 1)[0] == root)
        hint = f"; settable {root} keys: {', '.join(near)}" if near else ""
        raise SettingError(f"{key} is not settable over HTTP (the server sets it, or it does "
                           f"not exist){hint}")
    setting.check(key, value)
