"""The objects create_app sets on app.state (store, runner, validator), as route dependencies."""
from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.registry.store import Store


def _store(request: Request) -> Store:
    return request.app.state.store


def _runner(request: Request) -> Runner:
    return request.app.state.runner


def _validator(request: Request) -> OverrideValidator:
    return request.app.state.validator


StoreDep = Annotated[Store, Depends(_store)]
RunnerDep = Annotated[Runner, Depends(_runner)]
ValidatorDep = Annotated[OverrideValidator, Depends(_validator)]
