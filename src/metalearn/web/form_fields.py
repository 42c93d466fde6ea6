"""The start form's fields, derived from the allowlist (settable.py): one per settable key the
experiment's config has, with its kind, bounds and default, and one select per settable group.
A submitted form is read back into overrides of the fields the user changed only, each written
as a Hydra literal; whatever the text, the request validator decides, as for the JSON API."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from metalearn.api.overrides import OverrideError, check_depth
from metalearn.api.settable import GROUPS, SETTINGS, Setting
from metalearn.web.experiment_defaults import Defaults
from metalearn.web.forms import Form
from metalearn.web.hydra_literal import LiteralError, override
from metalearn.web.sessions import CSRF_FIELD

LAYERS = "model.layers"  # set by the layer builder (its hidden field holds the spec list as JSON)
SECTIONS = (("algorithm", "Algorithm"), ("data", "Data"), ("model", "Model"), ("trainer", "Trainer"),
            ("run", "Run"))
# Shown open; every other field sits in its section's collapsed "more" part.
COMMON = frozenset({
    "algorithm", "algorithm.inner_lr", "algorithm.inner_steps", "algorithm.eval_inner_steps",
    "algorithm.optimizer.lr", "data.shots", "data.queries", "data.ways", "data.meta_batch_size",
    "data.heldout", "model", "model.trainable_layers", "model.hidden", "model.dropout",
    "trainer.max_steps", "seed", "tags", "debug",
})
GROUP = "group"  # the kind of a config group's select


def suffix(key: str) -> str:
    """A key as the end of its element ids: field-<suffix>, error-<suffix>."""
    return key.replace(".", "-")


@dataclass(frozen=True)
class FormField:
    """One input of the start form: a settable key (or group) with its default."""

    key: str
    kind: str  # a Setting's kind, or "group"
    default: Any
    setting: Setting | None = None  # None for a group
    options: tuple[str, ...] = ()  # a group's options, a choice's choices
    unresolved: bool = False  # the default is an interpolation shown as written
    description: str = ""

    @property
    def id(self) -> str:
        return "field-" + suffix(self.key)

    @property
    def error_id(self) -> str:
        return "error-" + suffix(self.key)

    @property
    def section(self) -> str:
        root = self.key.split(".", 1)[0]
        return root if root in dict(SECTIONS) else "run"

    @property
    def common(self) -> bool:
        return self.key in COMMON

    @property
    def input(self) -> str:
        """The element: number, checkbox, select or text."""
        return {"int": "number", "float": "number", "bool": "checkbox", "choice": "select",
                GROUP: "select"}.get(self.kind, "text")

    @property
    def low(self) -> str:
        return _bound(self.setting.low if self.setting else None, self.kind)

    @property
    def high(self) -> str:
        return _bound(self.setting.high if self.setting else None, self.kind)

    @property
    def step(self) -> str:
        return "1" if self.kind == "int" else "any"

    @property
    def nullable(self) -> bool:
        return bool(self.setting and self.setting.nullable) or (self.kind == GROUP and self.default is None)

    @property
    def hint(self) -> str:
        """What the field takes, in words."""
        empty = ", empty for null" if self.nullable and self.kind != GROUP else ""
        if self.kind in ("int", "float"):
            return f"{'integer' if self.kind == 'int' else 'number'}, {self.low} to {self.high}{empty}"
        if self.kind == "int_or_all":
            return f"integer {self.low} to {self.high}, or all"
        if self.kind == "names":
            return f"names separated by commas, at most {self.setting.max_items}{empty}"
        if self.kind == "choice":
            return "one of " + ", ".join(self.options)
        if self.kind == GROUP:
            return self.description
        return ""

    @property
    def default_text(self) -> str:
        return str(self.default) if self.unresolved else self.text(self.default)

    def text(self, value: Any) -> str:
        """value as the field shows it."""
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return repr(value)
        if isinstance(value, (list, tuple)) and self.kind == "names":
            return ", ".join(str(v) for v in value)
        if isinstance(value, (list, tuple, dict)):
            return json.dumps(value)
        return str(value)

    def read(self, raw: str) -> Any:
        """The value a submitted text stands for: a number where it reads as one, else the
        text as it is (the validator then refuses it with the API's message)."""
        raw = raw.strip()
        kind = self.kind
        if kind == "bool":
            return raw == "true"
        if raw == "" and kind != "names":
            return None
        if kind in ("int", "float") or (kind == "int_or_all" and raw != "all"):
            return _number(raw, integer=kind != "float")
        if kind == "names":
            items = [item.strip() for item in raw.removeprefix("[").removesuffix("]").split(",")]
            items = [item for item in items if item]
            return None if not items and self.nullable else items
        return raw

    def changed(self, raw: str) -> bool:
        """Whether the submitted text differs from the default the form showed."""
        if self.unresolved:
            return raw.strip() != self.default_text
        if self.kind == GROUP:
            return raw.strip() != self.default_text
        return self.text(self.read(raw)) != self.default_text


def fields_for(defaults: Defaults, settings: Mapping[str, Setting] = SETTINGS,
               groups: Mapping[str, str] = GROUPS) -> list[FormField]:
    """The form's fields for an experiment: its settable groups, then each settable key its
    config has (in the allowlist's order), the layer list left to the builder."""
    out = [FormField(group, GROUP, defaults.choices.get(group), options=defaults.options.get(group, ()),
                     description=description) for group, description in groups.items()]
    for key, setting in settings.items():
        if key == LAYERS or key not in defaults.values:
            continue
        out.append(FormField(key, setting.kind, defaults.values[key], setting, options=setting.choices,
                             unresolved=key in defaults.unresolved))
    return out


@dataclass
class Submitted:
    """A submitted start form: its overrides, its texts (to show again), refusals by field."""

    overrides: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)  # key: the text sent
    errors: dict[str, str] = field(default_factory=dict)  # field key: the message


def read_start(form: Form, defaults: Defaults, fields: list[FormField]) -> Submitted:
    """The overrides of the fields that differ from their defaults, in the allowlist's order
    (groups first); a field the page does not have is passed on as `name=value`, as the API
    would get it, for the validator to refuse."""
    out = Submitted()
    known = {CSRF_FIELD, "experiment", LAYERS}
    for f in fields:
        known.add(f.key)
        raw = form.get(f.key, f.default_text) if f.key in form.fields else f.default_text
        out.values[f.key] = raw
        if not f.changed(raw):
            continue
        if f.kind == GROUP and not raw.strip():  # Hydra composes no `group=null` (nor may a request delete one)
            out.errors[f.key] = (f"{f.key}: the experiment chooses {f.default_text}; a run may choose another "
                                 f"of {', '.join(f.options)}, not none")
        else:
            out.overrides.append(override(f.key, raw.strip() if f.kind == GROUP else f.read(raw)))
    model = out.values.get("model", defaults.choices.get("model"))
    raw_layers = form.get(LAYERS)
    out.values[LAYERS] = raw_layers
    if model in defaults.layer_lists and LAYERS in form.fields:
        try:
            specs = layer_specs(raw_layers)
        except OverrideError as exc:
            out.errors[LAYERS] = str(exc)
        else:
            if specs != layer_default(defaults, model):
                try:
                    out.overrides.append(override(LAYERS, specs))
                except LiteralError as exc:
                    out.errors[LAYERS] = f"{LAYERS}: {exc}"
    out.overrides += [f"{name}={form.get(name)}" for name in form.fields if name not in known]
    return out


def layer_specs(raw: str) -> Any:
    """The builder's JSON spec list (any JSON: the validator checks what it holds)."""
    check_depth(f"{LAYERS}={raw}")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise OverrideError(f"{LAYERS}: the layer list is not valid JSON ({exc})") from exc


def layer_default(defaults: Defaults, model: str | None) -> list | None:
    """The layer list a model option gives without a model.layers override: the experiment's
    own where it chose that option, else the option's file's."""
    if model == defaults.choices.get("model") and LAYERS in defaults.values:
        return defaults.values[LAYERS]
    return defaults.layer_lists.get(model or "")


def field_of(message: str, keys: list[str]) -> str | None:
    """The key a refusal is about: the first named as a subject (`key=`, `key:`, `key/option`),
    else the first named at all (the longest where several start at one place); else None."""
    for after in (r"[=:/]", r"(?!\w)"):
        best: tuple[int, int, str] | None = None
        for key in keys:
            hit = re.search(r"(?<![\w.])" + re.escape(key) + after, message)
            if hit and (best is None or (hit.start(), -len(key)) < best[:2]):
                best = (hit.start(), -len(key), key)
        if best:
            return best[2]
    return None


def _number(raw: str, *, integer: bool) -> Any:
    """raw as an int (where integer and it reads as one), a float, else the text itself."""
    if integer:
        try:
            return int(raw)
        except ValueError:
            pass
    try:
        return float(raw)
    except ValueError:
        return raw


def _bound(value: float | None, kind: str) -> str:
    if value is None:
        return ""
    return str(int(value)) if kind in ("int", "int_or_all") else f"{value:g}"
