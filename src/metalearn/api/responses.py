"""The error responses each endpoint documents in its OpenAPI entry (`responses=` of a route)."""
from __future__ import annotations

from typing import Any

from metalearn.api.auth import TOKEN_ENV
from metalearn.api.models import Problem, ValidationProblem

Responses = dict[int | str, dict[str, Any]]

UNAUTHORIZED: Responses = {401: {
    "model": Problem,
    "description": "Missing or wrong bearer token: send `Authorization: Bearer <token>` "
                   "(the **Authorize** button on this page does it).",
    "headers": {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
}}
NO_TOKEN: Responses = {403: {
    "model": Problem,
    "description": f"This server has no API token ({TOKEN_ENV} was not set where it started), "
                   "so it refuses every request that needs one.",
}}
AUTH = {**UNAUTHORIZED, **NO_TOKEN}
NOT_FOUND: Responses = {404: {"model": Problem, "description": "No attempt with this id."}}
INVALID: Responses = {422: {
    "model": ValidationProblem,
    "description": "The request is malformed or names something the project does not have "
                   "(experiment, override key or type, domain, status); nothing was started.",
}}
QUEUE_FULL: Responses = {429: {
    "model": Problem,
    "description": "The queue is full: retry after the number of seconds in Retry-After.",
    "headers": {"Retry-After": {"description": "seconds to wait before retrying",
                                "schema": {"type": "integer"}}},
}}


def conflict(when: str) -> Responses:
    """A 409 answered when the attempt's state does not allow the request."""
    return {409: {"model": Problem, "description": when}}


def guarded(protected: bool) -> Responses:
    """The token errors of a route: 401 and 403 where it needs the token, none where it is open."""
    return AUTH if protected else {}
