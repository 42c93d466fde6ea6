"""The attempt a path names: its id (1 to the largest the registry's integer columns hold),
and a lookup whose missing attempt is answered 404."""
from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import HTTPException, Path, status

from metalearn.registry.errors import NotFound

MAX_ID = 2**63 - 1  # the registry's integer columns; larger ids and steps cannot exist
AttemptId = Annotated[int, Path(ge=1, le=MAX_ID, description="an attempt id")]


def found(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """fn(*args, **kwargs), with a missing attempt as 404."""
    try:
        return fn(*args, **kwargs)
    except NotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
