"""Check a request's experiment and overrides against the real config before anything starts.

Overrides are parsed by Hydra's own grammar (never evaluated); each must change a key the
allowlist in `settable.py` declares, within its bounds, or pick an option of a settable
config group. The result is composed with the project's config (cached per experiment and
group choice, so a request costs milliseconds), type-checked against the constructor
signature the key feeds (else against the value it replaces), a model=layers spec list is
built on the meta device, and the data source checks the sizes against its data. Every
refusal is an OverrideError whose message says what and why, without echoing long input.
"""
from __future__ import annotations

import copy
import logging
import re
import threading
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ConfigDict, TypeAdapter, ValidationError

from metalearn.api.settable import GROUPS, SETTINGS, Setting, SettingError, check_setting
from metalearn.data.base import DataPlan
from metalearn.instantiate import build
from metalearn.models.layers import LayerModel, LayerSpecError, check_model
from metalearn.project import find_project_root
from metalearn.resolvers import config_searchpath  # registers the resolvers the configs use

log = logging.getLogger(__name__)

# Why a key a request may not set is the server's: said in the refusal.
SERVER_OWNED = {"hydra": "Hydra's own settings", "paths": "where files go",
                "registry": "where attempts are recorded", "task_name": "names the log folder",
                "ckpt_path": "meta-test a finished attempt with POST /runs/{id}/test instead",
                "experiment": "give it as the request's experiment field"}
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
SPECIAL_KEY = re.compile(r"^_.*_$")  # _target_, _partial_, _args_, _recursive_, _convert_
MAX_OVERRIDES, MAX_LENGTH = 64, 8192
# Brackets one value may nest: Hydra's parser recurses once per level (400 levels overflow
# Python's stack); a layer spec needs 3.
MAX_DEPTH = 16
OPENING, CLOSING = frozenset("[{("), frozenset("]})")
_STRICT = ConfigDict(arbitrary_types_allowed=True, strict=True)
_compose_lock = threading.Lock()  # Hydra's global state is not thread-safe


class OverrideError(ValueError):
    """A request's experiment or overrides are not acceptable (answered with 422)."""


def shown(text: str, limit: int = 80) -> str:
    """text for a message: repr'd and cut, so a refusal never echoes a long input back."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


class OverrideValidator:
    """Validates (experiment, overrides) against the config tree in conf_dir.

    root is the project the children run in (default: the clone around the current folder,
    else the current folder): paths in the config resolve against it, as they will in the
    child. settings and groups are the allowlist (settable.py's by default).
    """

    def __init__(self, conf_dir: str | Path, config_name: str = "train", *,
                 root: str | Path | None = None, settings: Mapping[str, Setting] = SETTINGS,
                 groups: Mapping[str, str] = GROUPS, check_data: bool = True) -> None:
        self.conf_dir = Path(conf_dir).resolve()
        self.config_name = config_name
        self.root = Path(root).resolve() if root else find_project_root()
        self.settings, self.groups, self.check_data = settings, groups, check_data
        self._parser = OverridesParser.create()
        self._bases: dict[tuple[str | None, tuple[str, ...]], DictConfig] = {}

    def config_folders(self) -> list[Path]:
        """conf_dir, then the folders of $METALEARN_CONFIG_DIR (train.yaml's search path)."""
        return [self.conf_dir, *(Path(entry.removeprefix("file://"))
                                 for entry in config_searchpath())]

    def validate(self, experiment: str | None, overrides: Sequence[str],
                 server: Sequence[str] = ()) -> DictConfig:
        """The composed config for a request; raises OverrideError with the reason."""
        return self.check(experiment, overrides, server)[0]

    def check(self, experiment: str | None, overrides: Sequence[str],
              server: Sequence[str] = ()) -> tuple[DictConfig, DataPlan | None]:
        """The composed config and the data's plan for it; raises OverrideError with the reason.

        server: overrides the server itself adds (e.g. ckpt_path for a meta-test), parsed and
        applied but exempt from the allowlist.
        """
        if experiment is not None:
            check_name("experiment", experiment)
            if not any((folder / "experiment" / f"{experiment}.yaml").is_file()
                       for folder in self.config_folders()):
                raise OverrideError(f"unknown experiment {shown(experiment)}")
        parsed = self.parse(overrides)
        groups = [o for o in parsed if o.key_or_group in self.groups]
        for o in groups:
            check_name(o.key_or_group, str(o.value()))
        base = self._base(experiment, tuple(o.input_line for o in groups))
        cfg = copy.deepcopy(base)
        extra = [self._parse_one(line, server=True) for line in server]
        for o in [*(o for o in parsed if o not in groups), *extra]:
            key, value = o.key_or_group, o.value()
            if not has_key(base, key):
                raise OverrideError(f"{key}: no such key in the {experiment or 'default'} config")
            check_type(base, key, value)
            OmegaConf.update(cfg, key, value, merge=False)
        check_layer_model(cfg)
        return cfg, self.plan(cfg) if self.check_data else None

    def plan(self, cfg: DictConfig) -> DataPlan | None:
        """The data source's own check of the sizes and groups asked for, on its metadata."""
        if not isinstance(cfg.get("data"), DictConfig):
            return None
        try:
            return build(cfg.data).preflight()
        except (ValueError, TypeError, FileNotFoundError, OmegaConfBaseException) as exc:
            raise OverrideError(f"data: {exc}") from exc

    def parse(self, overrides: Sequence[str]) -> list[Override]:
        """Parse overrides with Hydra's grammar; refuse every form that is not a plain change
        of a settable key within its bounds."""
        if len(overrides) > MAX_OVERRIDES:
            raise OverrideError(f"at most {MAX_OVERRIDES} overrides")
        return [self._parse_one(line) for line in overrides]

    def _parse_one(self, line: str, server: bool = False) -> Override:
        if not isinstance(line, str) or len(line) > MAX_LENGTH:
            raise OverrideError(f"an override is a string of at most {MAX_LENGTH} characters")
        check_depth(line)
        try:
            (override,) = self._parser.parse_overrides([line])
        except (HydraException, ValueError) as exc:  # ValueError: an integer of 4,300+ digits
            raise OverrideError(f"cannot parse override {shown(line)}: {_first_line(exc)}") from exc
        check_override(override)
        if not server:
            self._check_allowed(override)
        return override

    def _check_allowed(self, o: Override) -> None:
        """The allowlist: a settable group's option, or a declared key within its bounds."""
        key = o.key_or_group
        if key in self.groups:
            return
        root = key.split(".", 1)[0]
        if root in SERVER_OWNED and key not in self.settings:
            raise OverrideError(f"{shown(o.input_line)}: {key} ({SERVER_OWNED[root]}) is set by the server")
        try:
            check_setting(key, o.value(), self.settings)
        except SettingError as exc:
            raise OverrideError(f"{shown(o.input_line)}: {exc}") from exc

    def _base(self, experiment: str | None, groups: tuple[str, ...]) -> DictConfig:
        """The composed config for an experiment and group choices (composed once, then reused)."""
        key = (experiment, groups)
        if key not in self._bases:
            head = [f"experiment={experiment}"] if experiment is not None else []
            cfg = self.compose([*head, *groups])
            if isinstance(cfg.get("paths"), DictConfig) and "root_dir" in cfg.paths:
                cfg.paths.root_dir = str(self.root)  # as PROJECT_ROOT is in the child
            if len(self._bases) >= 256:
                self._bases.pop(next(iter(self._bases)))
            self._bases[key] = cfg
        return self._bases[key]

    def compose(self, overrides: list[str], *, hydra_config: bool = False) -> DictConfig:
        """The config Hydra composes for these overrides (with Hydra's own part, which holds the
        groups' choices, when hydra_config); composition errors become OverrideError."""
        with _compose_lock, initialize_config_dir(config_dir=str(self.conf_dir), version_base="1.3"):
            try:
                return compose(config_name=self.config_name, overrides=overrides, return_hydra_config=hydra_config)
            # ValueError: Hydra's own refusal of some group overrides (`debug=null`: "Config group
            # override must be a string or a list")
            except (HydraException, OmegaConfBaseException, ValueError) as exc:
                lines = [ln for ln in str(exc).splitlines() if ln and not ln.startswith("To append")]
                raise OverrideError("; ".join(lines)) from exc


def check_depth(line: str) -> None:
    """Brackets nest at most MAX_DEPTH deep, counted before Hydra parses the line. Quotes are
    not skipped: a bracket inside a quoted string counts too (no settable value needs many)."""
    depth = deepest = 0
    for char in line:
        if char in OPENING:
            depth += 1
            deepest = max(deepest, depth)
        elif char in CLOSING:
            depth = max(depth - 1, 0)
    if deepest > MAX_DEPTH:
        key = line.partition("=")[0]
        raise OverrideError(f"{shown(key)}: values nest at most {MAX_DEPTH} brackets deep, "
                            f"this one {deepest}")


def check_name(what: str, value: str) -> None:
    """A config name: letters, digits, _ . / -, no '..'."""
    if not NAME.match(value) or ".." in value or len(value) > 128:
        raise OverrideError(f"{what}: {shown(value)} is not a valid config name")


def check_override(o: Override) -> None:
    """Only `key=value` changes of ordinary keys, with literal values."""
    line = shown(o.input_line)
    if o.type != OverrideType.CHANGE:
        raise OverrideError(f"{line}: adding (+) or deleting (~) keys is not allowed; change existing keys only")
    if o.package is not None:
        raise OverrideError(f"{line}: package overrides (@) are not allowed")
    if o.is_sweep_override():
        raise OverrideError(f"{line}: sweeps are not allowed; submit one run per value")
    parts = o.key_or_group.replace("/", ".").split(".")
    if any(SPECIAL_KEY.match(p) for p in parts):
        raise OverrideError(f"{line}: {o.key_or_group} is a special key (_target_ and the like) and cannot be set")
    if _has_special_key(o.value()):
        raise OverrideError(f"{line}: values may not contain special keys (_target_ and the like)")
    if _has_interpolation(o.value()):
        raise OverrideError(f"{line}: interpolations (${{...}}) are not allowed in values")


def has_key(cfg: DictConfig, key: str) -> bool:
    """Whether key names an existing entry of cfg (its value may be null)."""
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key, throw_on_resolution_failure=False) if parent_key else cfg
    return isinstance(parent, DictConfig) and leaf in parent


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


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
                f"{key}={shown(str(value))}: wrong type, expected {_type_name(annotation)}"
            ) from exc
    try:
        old = OmegaConf.select(base, key, throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        log.debug("no type check for %s: its current value does not resolve here", key)
        return
    if OmegaConf.is_config(old):
        old = OmegaConf.to_container(old, resolve=False)
    if not _same_kind(old, value):
        raise OverrideError(f"{key}={shown(str(value))}: wrong type, expected {type(old).__name__} "
                            f"like {shown(str(old))}")


def check_layer_model(cfg: DictConfig) -> None:
    """A model=layers config must build (checked on the meta device, nothing allocated), and
    fit its bounds at the token length the run will use: its own input_shape only infers the
    auto sizes, while batches are padded to their longest text, up to data.max_length."""
    model = cfg.get("model")
    if not isinstance(model, DictConfig) or model.get("_target_") != f"{LayerModel.__module__}.LayerModel":
        return
    kwargs = {k: v for k, v in OmegaConf.to_container(model, resolve=True).items() if not k.startswith("_")}
    _check_model(kwargs, "model.layers")
    data = cfg.get("data")
    length = data.get("max_length") if isinstance(data, DictConfig) else None
    if kwargs.get("input", "tokens") == "tokens" and isinstance(length, int) and not isinstance(length, bool) \
            and [length] != list(kwargs.get("input_shape") or []):
        _check_model({**kwargs, "input_shape": [length]},
                     f"model.layers at data.max_length={length} tokens per example")


def _check_model(kwargs: dict[str, Any], where: str) -> None:
    """check_model, its refusal as OverrideError (first line only: torch's can carry a C++ trace)."""
    try:
        check_model(**kwargs)
    except TypeError as exc:
        raise OverrideError(f"model: {_first_line(exc)}") from exc
    except LayerSpecError as exc:
        raise OverrideError(f"{where}: {_first_line(exc)}") from exc


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
