"""What the start form shows for an experiment: the experiments there are, each settable key's
value in the experiment's composed config, the option each settable config group chose and the
options the group has (the same config folders the request validator reads)."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from metalearn.api.overrides import NAME, OverrideError, OverrideValidator, has_key

MAX_CACHED = 64


@dataclass(frozen=True)
class Defaults:
    """An experiment's composed config as the form shows it."""

    experiment: str
    values: dict[str, Any]  # each settable key the config has: its value (plain, resolved)
    unresolved: frozenset[str]  # keys whose value is an interpolation that does not resolve here
    choices: dict[str, str | None]  # each settable group: the option the experiment chose
    options: dict[str, tuple[str, ...]]  # each settable group: its options (config file names)
    layer_lists: dict[str, list]  # model options with a `layers` list (the builder's): that list


def experiments(validator: OverrideValidator) -> list[str]:
    """The experiment configs (experiment/*.yaml) of the validator's config folders."""
    return _names(validator.config_folders(), "experiment")


def defaults_of(validator: OverrideValidator, experiment: str) -> Defaults:
    """The experiment's defaults (composed once per experiment, then reused); OverrideError
    for an experiment the validator would refuse or a config that does not compose."""
    key = (str(validator.conf_dir), validator.config_name, tuple(map(str, validator.config_folders())), experiment)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    if experiment not in experiments(validator):
        validator.validate(experiment, [])  # raises the API's refusal of the name
        raise OverrideError(f"unknown experiment {experiment!r}")
    cfg = _compose(validator, experiment)
    values, unresolved = {}, set()
    for name in validator.settings:
        if not has_key(cfg, name):
            continue
        try:
            value = OmegaConf.select(cfg, name, throw_on_resolution_failure=True)
        except OmegaConfBaseException:
            value = OmegaConf.select(cfg, name, throw_on_resolution_failure=False)
            unresolved.add(name)
        if isinstance(value, (DictConfig, ListConfig)):
            value = OmegaConf.to_container(value, resolve=name not in unresolved)
        values[name] = value
    folders = validator.config_folders()
    chosen = OmegaConf.to_container(cfg.hydra.runtime.choices, resolve=False)
    options = {group: tuple(_names(folders, group)) for group in validator.groups}
    found = Defaults(experiment, values, frozenset(unresolved),
                     {group: chosen.get(group) for group in validator.groups}, options,
                     _layer_lists(folders, options.get("model", ())))
    with _cache_lock:
        if len(_cache) >= MAX_CACHED:
            _cache.pop(next(iter(_cache)))
        _cache[key] = found
    return found


_cache: dict[tuple[str, str, tuple[str, ...], str], Defaults] = {}
_cache_lock = threading.Lock()


def _compose(validator: OverrideValidator, experiment: str) -> DictConfig:
    """The experiment's config with Hydra's own part (which holds the groups' choices), composed
    as the validator composes every request's."""
    try:
        return validator.compose([f"experiment={experiment}"], hydra_config=True)
    except OverrideError as exc:
        raise OverrideError(f"experiment {experiment!r} does not compose: {str(exc)[:200]}") from exc


def _names(folders: list[Path], group: str) -> list[str]:
    """The config names of group (its *.yaml files) across folders, sorted."""
    names = {path.stem for folder in folders for path in (folder / group).glob("*.yaml")}
    return sorted(n for n in names if NAME.match(n))


def _layer_lists(folders: list[Path], models: tuple[str, ...]) -> dict[str, list]:
    """Model options whose own file declares a `layers` list (a layer model): that list."""
    out: dict[str, list] = {}
    for option in models:
        for folder in folders:
            path = folder / "model" / f"{option}.yaml"
            if not path.is_file():
                continue
            try:
                loaded = OmegaConf.load(path)
            except (OmegaConfBaseException, OSError, ValueError):
                loaded = None
            layers = loaded.get("layers") if isinstance(loaded, DictConfig) else None
            if isinstance(layers, ListConfig):
                out[option] = OmegaConf.to_container(layers, resolve=False)
            break
    return out
