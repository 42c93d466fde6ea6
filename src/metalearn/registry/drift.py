"""What a recorded attempt ran that its command no longer gives: defaults changed since.

A record keeps the overrides it was launched with and the whole config that ran. When an
experiment's defaults change later (a tuned value, a new option), the same command composes
another config, so a results table that showed the command alone would credit the old
numbers to the new defaults. `drift` composes the command today and names the values that
differ; tables and figures show them beside the command, and never pool such attempts with
today's as seeds of one row.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from metalearn.conf import compose_train

# What a run computes; paths, loggers and the registry only say where and how it was kept.
SECTIONS = ("algorithm", "model", "data", "objective")
ABSENT = object()
# Settings that change how a run computes, not what: the same numbers up to float rounding
# (tests/models/test_text.py), as on another CPU, or bit for bit (model.cache_trunk:
# tests/models/test_trunk_cache.py). A record that ran otherwise has not drifted.
HOW_NOT_WHAT = ("model.skip_padding", "model.cache_trunk")


def leaves(node: Any, prefix: str) -> dict[str, Any]:
    """A config subtree as {dotted key: value} of its leaves (an empty dict leaves nothing)."""
    if not isinstance(node, dict):
        return {prefix: node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(leaves(value, f"{prefix}.{key}"))
    return out


def is_derived(value: Any) -> bool:
    """An interpolation (`${seed}`, `${paths.data_dir}/...`): its recorded value depends on the
    run (seed, machine), not on the defaults."""
    return isinstance(value, str) and "${" in value


@lru_cache(maxsize=256)
def composed(experiment: str, overrides: tuple[str, ...]) -> dict[str, Any] | None:
    """Today's config sections for a command, unresolved; None where it no longer composes
    (an experiment or key since removed)."""
    try:
        cfg = compose_train([f"experiment={experiment}", *overrides])
    except (HydraException, OmegaConfBaseException):
        return None
    return {s: OmegaConf.to_container(cfg[s], resolve=False) for s in SECTIONS if s in cfg}


def drift(config: dict[str, Any], experiment: str, overrides: tuple[str, ...]) -> dict[str, Any]:
    """{key: the value the attempt ran} for every value its command now composes differently
    (ABSENT: an option the attempt's version did not have, which today's command turns on).

    Interpolated values and seeds are skipped; an option the attempt lacked counts as unchanged
    while today it is off (False or None), since it then does nothing."""
    now_sections = composed(experiment, tuple(o for o in overrides if not o.startswith("ckpt_path=")))
    if now_sections is None:
        return {}
    now, then = {}, {}
    for section in SECTIONS:
        if isinstance(config.get(section), dict):  # a section the record kept
            now.update(leaves(now_sections.get(section, {}), section))
            then.update(leaves(config[section], section))
    out = {}
    for key in sorted(set(now) | set(then)):
        today, ran = now.get(key, ABSENT), then.get(key, ABSENT)
        if is_derived(today) or key.rsplit(".", 1)[-1] == "seed" or key in HOW_NOT_WHAT:
            continue
        if ran is ABSENT and today in (False, None):
            continue
        if today is ABSENT and ran is None:
            continue
        if today is ABSENT and any(is_derived(now.get(k)) for k in prefixes(key)):
            continue
        if ran != today:
            out[key] = ran
    return collapse(out, then)


def collapse(changed: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """Changed keys under a node the attempt instantiated (`_target_`) as that one node,
    rendered as a call: `algorithm.optimizer=SGD(lr=0.5)` rather than its leaves."""
    out: dict[str, Any] = {}
    for key, value in changed.items():
        # the deepest such node below the section (the section itself, `algorithm`, is one too)
        node = next((p for p in reversed(prefixes(key)[1:]) if f"{p}._target_" in then), None)
        if node is None:
            out[key] = value
        elif node not in out:
            inner = {k[len(node) + 1:]: v for k, v in then.items() if k.startswith(f"{node}.")}
            name = str(inner.pop("_target_")).rsplit(".", 1)[-1]
            args = ", ".join(f"{k}={v}" for k, v in inner.items() if not k.startswith("_"))
            out[node] = Call(f"{name}({args})")
    return out


class Call(str):
    """A node shown as the call it made (`SGD(lr=0.5)`), printed as is."""


def prefixes(key: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`]: the nodes above a key."""
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def describe(changed: dict[str, Any]) -> str:
    """`key=value` pairs as a user would type them; options the attempt lacked as `no key`."""
    def shown(value: Any) -> str:
        # lists and mappings in Hydra's override syntax: one line, where YAML's block style
        # would break a table cell in two
        if isinstance(value, Call):
            return value
        if isinstance(value, (list, tuple)):
            return "[" + ",".join(shown(v) for v in value) + "]"
        if isinstance(value, dict):
            return "{" + ",".join(f"{k}:{shown(v)}" for k, v in value.items()) + "}"
        return OmegaConf.to_yaml({"v": value})[3:].strip()

    return ", ".join(f"no {k}" if v is ABSENT else f"{k}={shown(v)}" for k, v in changed.items())
