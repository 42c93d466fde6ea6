"""What past attempts in the registry offer a new sweep: starting points and known values.

Warm start: the best finished attempts of the same experiment become a study's first trials.
Reuse: a trial whose config equals a finished attempt's takes that attempt's value instead of
training again. "Equal" is decided on the resolved config, with what never changes a result
left out (where it was written, how it was logged, which study it belonged to).
"""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from metalearn.registry import schema
from metalearn.registry.store import Store

log = logging.getLogger(__name__)

# Config parts that say where and how an attempt was written down, not what it computed.
NOT_COMPARED = ("hydra", "study", "registry", "logger", "extras")
OUTPUT = "<output_dir>"


def attempt_value(store: Store, attempt_id: int, metric: str, mode: str) -> float | None:
    """The best value metric reached during the attempt: what the kept checkpoint scored and
    what run.py returns to a sweeper (None when it never logged it)."""
    summary = store.metric_summary(attempt_id).get(metric)
    if summary is None:
        return None
    return summary["max"] if mode == "max" else summary["min"]


def finished(store: Store, experiment: str | None, metric: str, mode: str) -> list[tuple[dict, float]]:
    """Completed training attempts of the experiment with their value, best first; debug runs
    (`debug=fast` and the like) are no starting points, however they scored."""
    attempts = store.list_attempts(status=schema.COMPLETED, experiment=experiment, kind="train",
                                   with_config=True, debug=False)
    valued = [(a, attempt_value(store, a["id"], metric, mode)) for a in attempts]
    ranked = [(a, v) for a, v in valued if v is not None]
    ranked.sort(key=lambda pair: pair[1], reverse=(mode == "max"))
    return ranked


def params_of(attempt: Mapping[str, Any], space: Mapping[str, BaseDistribution]
              ) -> dict[str, Any] | None:
    """The attempt's values for the study's parameters (space: name -> distribution): what its
    config held, else what it was given on the command line. None if one is missing, not a
    plain value or outside the space: an attempt of another algorithm is no starting point."""
    typed = dict(o.split("=", 1) for o in attempt.get("overrides") or [] if "=" in o)
    config = OmegaConf.create(attempt.get("config") or {})
    params: dict[str, Any] = {}
    for key, distribution in space.items():
        value = OmegaConf.select(config, key, default=None)
        if value is None and key in typed:
            value = typed[key]
        if value is None or OmegaConf.is_config(value):
            return None
        if not inside(distribution, value):
            log.info("attempt %s: %s=%r lies outside the study's space", attempt.get("id"), key,
                     value)
            return None
        params[key] = value
    return params


def inside(space: BaseDistribution, value: Any) -> bool:
    """Whether a distribution can yield value (a number within its bounds, or one of its
    choices)."""
    if isinstance(space, CategoricalDistribution):
        return value in space.choices
    if isinstance(space, (FloatDistribution, IntDistribution)):
        try:
            return space.low <= float(value) <= space.high
        except (TypeError, ValueError):
            return False
    return True


def comparable_trial(cfg: DictConfig) -> dict[str, Any] | None:
    """A trial's composed config in the form it is compared in (None if it does not resolve
    before launch, which only means it is never reused)."""
    cfg = cfg.copy()
    with_outputs = OmegaConf.select(cfg, "paths") is not None
    try:
        if with_outputs:
            OmegaConf.update(cfg, "paths.output_dir", OUTPUT, force_add=True)
        container = OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        log.debug("trial config does not resolve before launch: %s", exc)
        return None
    return {k: v for k, v in container.items() if k not in NOT_COMPARED}


def comparable_attempt(attempt: Mapping[str, Any]) -> dict[str, Any] | None:
    """A recorded attempt's config in the form it is compared in."""
    config = attempt.get("config")
    if not isinstance(config, dict):
        return None
    output = attempt.get("output_dir")
    return {k: _replace(v, output) for k, v in config.items() if k not in NOT_COMPARED}


def _replace(value: Any, output: str | None) -> Any:
    """value with the attempt's output folder written as OUTPUT in every string."""
    if isinstance(value, dict):
        return {k: _replace(v, output) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, output) for v in value]
    if output and isinstance(value, str) and value.startswith(output):
        return OUTPUT + value[len(output):]
    return value


def same_config(
    trial: dict[str, Any] | None, candidates: Iterable[tuple[dict, float]]
) -> tuple[dict, float] | None:
    """The first finished attempt (and its value) whose config equals the trial's."""
    if trial is None:
        return None
    for attempt, value in candidates:
        if comparable_attempt(attempt) == trial:
            return attempt, value
    return None
