"""A sweep's search space: Hydra's sweep grammar turned into Optuna distributions.

`hydra.sweeper.params` (and sweep overrides on the command line) use Hydra's own override
grammar, so the same words work with Hydra's basic sweeper:

    algorithm.inner_lr: tag(log, interval(0.005, 0.2))   # a float, log-uniform
    algorithm.inner_steps: range(1, 9)                     # 1..8, stop excluded as in Python
    data.meta_batch_size: choice(2, 4, 8)                  # categorical
    trainer.max_steps: 60                                  # fixed for every trial
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)


class SearchSpaceError(ValueError):
    """A sweep parameter Optuna cannot search (the message names the key)."""


def parse_space(
    params: Mapping[str, Any] | None, arguments: Sequence[str]
) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """Split `hydra.sweeper.params` plus the command line's overrides into what is searched
    (name -> distribution) and what is fixed (name -> value as typed); the command line wins."""
    lines = [f"{key}={value}" for key, value in (params or {}).items()] + list(arguments)
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(lines):
        key = override.get_key_element()
        space.pop(key, None)
        fixed.pop(key, None)
        if override.is_sweep_override():
            space[key] = distribution(override)
        else:
            fixed[key] = override.get_value_element_as_str()
    return space, fixed


def distribution(override: Override) -> BaseDistribution:
    """The Optuna distribution of one sweep override."""
    key = override.get_key_element()
    value = override.value()
    if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
        choices = list(override.sweep_iterator(transformer=Transformer.encode))
        for choice in choices:
            if not isinstance(choice, (str, int, float, bool, type(None))):
                raise SearchSpaceError(f"{key}: a choice must be a str, number, bool or null, "
                                       f"not {type(choice).__name__}")
        return CategoricalDistribution(choices)
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        values = list(override.sweep_iterator())
        if not values:
            raise SearchSpaceError(f"{key}: range({value.start},{value.stop}) is empty")
        if all(isinstance(v, int) for v in values):
            return IntDistribution(values[0], values[-1], step=int(value.step or 1))
        return FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log = "log" in value.tags
        if value.start >= value.end:
            raise SearchSpaceError(f"{key}: interval({value.start}, {value.end}) is empty")
        if log and value.start <= 0:
            raise SearchSpaceError(f"{key}: a log interval needs a start above 0")
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise SearchSpaceError(f"{key}: not a sweep Optuna can search (use choice, range or "
                           "interval)")


def as_override(key: str, value: Any) -> str:
    """A trial's value as a Hydra override (floats kept exact, strings quoted when needed)."""
    if isinstance(value, bool):
        return f"{key}={str(value).lower()}"
    if value is None:
        return f"{key}=null"
    if isinstance(value, float):
        return f"{key}={value!r}"
    return f"{key}={value}"
