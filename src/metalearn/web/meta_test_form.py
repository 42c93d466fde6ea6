"""The meta-test form of a finished attempt: the groups it may be tested on and its own test
settings as defaults; a submitted form read into the API's TestRequest, so the page and
POST /runs/{id}/test take the same values through the same checks."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from annotated_types import Ge, Le
from omegaconf import OmegaConf
from pydantic import ValidationError

from metalearn.api.launch import LaunchCheck
from metalearn.api.meta_test import TEST_SETTINGS
from metalearn.api.models import TestRequest
from metalearn.api.overrides import OverrideError
from metalearn.web.form_fields import field_of
from metalearn.web.forms import Form

GROUPS = "groups"  # the checkboxes' name, and the field the request's domains come from
FIELDS = ("shots", "steps", "queries", "episodes")  # the number inputs, in the page's order
KEYS = {key: name for name, key in TEST_SETTINGS} | {"data.heldout": GROUPS}


@dataclass(frozen=True)
class NumberField:
    """A number input of the form, with the bounds and words of the TestRequest field it fills."""

    name: str
    key: str  # the config key it sets
    low: int | None
    high: int | None
    description: str


def _number_field(name: str) -> NumberField:
    info = TestRequest.model_fields[name]
    low = next((m.ge for m in info.metadata if isinstance(m, Ge)), None)
    high = next((m.le for m in info.metadata if isinstance(m, Le)), None)
    return NumberField(name, dict(TEST_SETTINGS)[name], low, high, info.description or "")


NUMBERS = tuple(_number_field(name) for name in FIELDS)


@dataclass
class MetaTestPage:
    """What the form offers for one attempt."""

    parent: dict[str, Any]
    defaults: dict[str, Any] = field(default_factory=dict)  # each number field: the attempt's own value
    heldout: list[str] = field(default_factory=list)  # the groups the attempt is tested on
    others: list[str] = field(default_factory=list)  # groups its data has that it did not train on
    trained: int = 0  # how many groups it meta-trained on (not offered)
    problem: str | None = None  # why the attempt's own settings could not be read

    def default_text(self, name: str) -> str:
        value = self.defaults.get(name)
        return "" if value is None else str(value)


def meta_test_page(check: LaunchCheck, parent: dict[str, Any]) -> MetaTestPage:
    """The form for parent: its data plan's groups, as the validator sees its training run."""
    page = MetaTestPage(parent)
    try:
        cfg, plan = check.validator.check(parent["experiment"], check.trained_with(parent))
    except OverrideError as exc:
        page.problem = str(exc)
        heldout = ((parent.get("config") or {}).get("data") or {}).get("heldout")
        page.heldout = [str(g) for g in heldout] if isinstance(heldout, list) else []
        return page
    page.defaults = {name: OmegaConf.select(cfg, key, default=None) for name, key in TEST_SETTINGS}
    if plan is not None:
        page.heldout = list(plan.test_groups)
        page.others = [g for g in plan.groups if g not in plan.train_groups and g not in plan.test_groups]
        page.trained = len(plan.train_groups)
    else:
        heldout = OmegaConf.select(cfg, "data.heldout", default=None)
        page.heldout = [str(g) for g in heldout] if heldout is not None else []
    return page



@dataclass
class MetaTestSubmitted:
    """A submitted meta-test form: the request (None when refused), its texts, refusals by field."""

    body: TestRequest | None
    values: dict[str, str]
    groups: list[str]
    errors: dict[str, str]


def read_meta_test(form: Form, page: MetaTestPage) -> MetaTestSubmitted:
    """The TestRequest of the fields changed from the attempt's own settings (a group set other
    than its held-out groups is the request's domains), checked as the API checks its body."""
    values = {name: form.get(name, page.default_text(name)).strip() for name in FIELDS}
    groups = form.all(GROUPS)
    asked: dict[str, Any] = {name: text for name, text in values.items() if text and text != page.default_text(name)}
    errors: dict[str, str] = {}
    if not groups and (page.heldout or page.others):
        errors[GROUPS] = "choose at least one group to meta-test on"
    elif groups and sorted(groups) != sorted(page.heldout):
        asked["domains"] = groups
    try:
        body = TestRequest.model_validate(asked)
    except ValidationError as exc:
        body = None
        for error in exc.errors():
            name = str(error["loc"][0]) if error.get("loc") else ""
            errors.setdefault(GROUPS if name == "domains" else name if name in FIELDS else "",
                              f"{name}: {error['msg']}")
    return MetaTestSubmitted(None if errors else body, values, groups, errors)


def refused_field(message: str) -> str:
    """The form field a meta-test refusal is about ("" for the form as a whole)."""
    key = field_of(message, list(KEYS))
    if key:
        return KEYS[key]
    return GROUPS if "domain" in message or "group" in message else ""
