"""Check a request's experiment and overrides against the real config before anything starts.

Overrides are parsed by Hydra's own grammar (never evaluated), restricted to changing keys
that exist, composed with the project's config, and type-checked against the constructor
signature the key feeds (else against the value it replaces). A model=layers spec list is
checked too. Every refusal is an OverrideError whose message says what and why.
"""
from __future__ import annotations

import logging
import re
import threading
import typing
from pathlib import Path
from typing import Any, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ConfigDict, TypeAdapter, ValidationError

import metalearn.resolvers  # noqa: F401  (the configs use ${metalearn.data_dir:...})
from metalearn.models.layers import LayerModel, LayerSpecError, check_model

log = logging.getLogger(__name__)

FORBIDDEN_ROOTS = {"hydra": "Hydra's own settings", "paths": "where files go",
                   "registry": "where attempts are recorded"}
RESERVED_KEYS = {"experiment": "give it as the request's experiment field",
                 "ckpt_path": "meta-test a finished attempt with POST /runs/{id}/test"}
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
SPECIAL_KEY = re.compile(r"^_.*_$")  # _target_, _partial_, _args_, _recursive_, _convert_
MAX_OVERRIDES, MAX_LENGTH = 64, 8192
_STRICT = ConfigDict(arbitrary_types_allowed=True, strict=True)
_compose_lock = threading.Lock()  # Hydra's global state is not thread-safe


class OverrideError(ValueError):
    """A request's experiment or overrides are not acceptable (answered with 422)."""


class OverrideValidator:
    """Validates (experiment, overrides) against the config tree in conf_dir."""

    def __init__(self, conf_dir: str | Path, config_name: str = "train") -> None:
        self.conf_dir = Path(conf_dir).resolve()
        self.config_name = config_name
        self._parser = OverridesParser.create()

    def validate(self, experiment: str | None, overrides: Sequence[str]) -> DictConfig:
        """The composed config for a request; raises OverrideError with the reason."""
        if experiment is not None:
            check_name("experiment", experiment)
            if not (self.conf_dir / "experiment" / f"{experiment}.yaml").is_file():
                raise OverrideError(f"unknown experiment {experiment!r}")
        parsed = self.parse(overrides)
        groups = [o for o in parsed if self._is_group(o.key_or_group)]
        for o in groups:
            check_name(o.key_or_group, str(o.value()))
        head = [f"experiment={experiment}"] if experiment is not None else []
        base = self._compose(head + [o.input_line for o in groups])
        cfg = self._compose(head + list(overrides))
        for o in parsed:
            if o not in groups:
                check_type(base, o.key_or_group, o.value())
        check_layer_model(cfg)
        return cfg

    def parse(self, overrides: Sequence[str]) -> list[Override]:
        """Parse overrides with Hydra's grammar and refuse every form that is not a plain change."""
        if len(overrides) > MAX_OVERRIDES:
            raise OverrideError(f"at most {MAX_OVERRIDES} overrides")
        parsed = []
        for line in overrides:
            if not isinstance(line, str) or len(line) > MAX_LENGTH:
                raise OverrideError(f"an override is a string of at most {MAX_LENGTH} characters")
            try:
                (override,) = self._parser.parse_overrides([line])
            except HydraException as exc:
                raise OverrideError(f"cannot parse override {line!r}: {exc}") from exc
            check_override(override)
            parsed.append(override)
        return parsed

    def _is_group(self, key: str) -> bool:
        """Whether key names a config group (a folder under conf/)."""
        return (self.conf_dir / key.replace(".", "/")).is_dir()

    def _compose(self, overrides: list[str]) -> DictConfig:
        """The config Hydra composes for these overrides; composition errors become OverrideError."""
        with _compose_lock, initialize_config_dir(config_dir=str(self.conf_dir), version_base="1.3"):
            try:
                return compose(config_name=self.config_name, overrides=overrides)
            except (HydraException, OmegaConfBaseException) as exc:
                lines = [ln for ln in str(exc).splitlines() if ln and not ln.startswith("To append")]
                raise OverrideError("; ".join(lines)) from exc


def check_name(what: str, value: str) -> None:
    """A config name: letters, digits, _ . / -, no '..'."""
    if not NAME.match(value) or ".." in value or len(value) > 128:
        raise OverrideError(f"{what}: {value!r} is not a valid config name")


def check_override(o: Override) -> None:
    """Only `key=value` changes of ordinary keys, with literal values."""
    line = o.input_line
    if o.type != OverrideType.CHANGE:
        raise OverrideError(f"{line!r}: adding (+) or deleting (~) keys is not allowed; change existing keys only")
    if o.package is not None:
        raise OverrideError(f"{line!r}: package overrides (@) are not allowed")
    if o.is_sweep_override():
        raise OverrideError(f"{line!r}: sweeps are not allowed; submit one run per value")
    parts = o.key_or_group.replace("/", ".").split(".")
    if any(SPECIAL_KEY.match(p) for p in parts):
        raise OverrideError(f"{line!r}: {o.key_or_group} is a special key (_target_ and the like) and cannot be set")
    if parts[0] in FORBIDDEN_ROOTS:
        raise OverrideError(f"{line!r}: {parts[0]}.* ({FORBIDDEN_ROOTS[parts[0]]}) is set by the server")
    if o.key_or_group in RESERVED_KEYS:
        raise OverrideError(f"{line!r}: {RESERVED_KEYS[o.key_or_group]}")
    if _has_special_key(o.value()):
        raise OverrideError(f"{line!r}: values may not contain special keys (_target_ and the like)")
    if _has_interpolation(o.value()):
        raise OverrideError(f"{line!r}: interpolations (${{...}}) are not allowed in values")


def check_type(base: DictConfig, key: str, value: Any) -> None:
    """value must fit the parameter key feeds (by its annotation), else the value it replaces."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(base, parent_key) if parent_key else base
    annotation = _annotation(parent, leaf) if isinstance(parent, DictConfig) else None
    if annotation is not None:
        try:
            TypeAdapter(annotation, config=_STRICT).validate_python(value)
            return
        except ValidationError as exc:
            raise OverrideError(
                f"{key}={value!r}: wrong type, expected {_type_name(annotation)}"
            ) from exc
    try:
        old = OmegaConf.select(base, key, throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        log.debug("no type check for %s: its current value does not resolve here", key)
        return
    if OmegaConf.is_config(old):
        old = OmegaConf.to_container(old, resolve=False)
    if not _same_kind(old, value):
        raise OverrideError(f"{key}={value!r}: wrong type, expected {type(old).__name__} like {old!r}")


def check_layer_model(cfg: DictConfig) -> None:
    """A model=layers config must build (checked on the meta device, nothing allocated)."""
    model = cfg.get("model")
    if not isinstance(model, DictConfig) or model.get("_target_") != f"{LayerModel.__module__}.LayerModel":
        return
    kwargs = {k: v for k, v in OmegaConf.to_container(model, resolve=True).items() if not k.startswith("_")}
    try:
        check_model(**kwargs)
    except TypeError as exc:
        raise OverrideError(f"model: {exc}") from exc
    except LayerSpecError as exc:
        raise OverrideError(f"model.layers: {exc}") from exc


def _annotation(parent: DictConfig, leaf: str) -> Any:
    """The type annotation of parameter leaf of parent's _target_, when there is a usable one."""
    target = parent.get("_target_")
    if not isinstance(target, str):
        return None
    try:
        obj = get_object(target)
        fn = obj.__init__ if isinstance(obj, type) else obj
        hints = typing.get_type_hints(fn)
    except (ImportError, AttributeError, NameError, TypeError, HydraException) as exc:
        log.debug("no annotations for %s: %s", target, exc)
        return None
    annotation = hints.get(leaf)
    if annotation is None or annotation is Any:
        return None
    try:
        TypeAdapter(annotation, config=_STRICT)
    except Exception as exc:  # pydantic cannot check every annotation; fall back to the value
        log.debug("annotation of %s.%s not checkable: %s", target, leaf, exc)
        return None
    return annotation


def _same_kind(old: Any, new: Any) -> bool:
    """Whether new may replace old: same JSON kind; an int may replace a float; None is open."""
    if old is None or new is None:
        return True
    if isinstance(old, bool) or isinstance(new, bool):
        return isinstance(old, bool) and isinstance(new, bool)
    if isinstance(old, float):
        return isinstance(new, (int, float))
    for kind in (int, str, list, dict):
        if isinstance(old, kind):
            return isinstance(new, kind)
    return True


def _has_interpolation(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_has_interpolation(k) or _has_interpolation(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_interpolation(v) for v in value)
    return False


def _has_special_key(value: Any) -> bool:
    if isinstance(value, dict):
        return any(SPECIAL_KEY.match(str(k)) or _has_special_key(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_special_key(v) for v in value)
    return False


def _type_name(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
