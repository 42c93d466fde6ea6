"""Request bodies of the HTTP API (unknown fields are refused)."""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

OverrideStr = Annotated[str, Field(min_length=1, max_length=8192)]
Domain = Annotated[str, Field(pattern=r"^[A-Za-z0-9_&.-]+$", max_length=64)]


class RunRequest(BaseModel):
    """POST /runs: an experiment and Hydra overrides (`key=value` strings)."""

    model_config = ConfigDict(extra="forbid")
    experiment: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$", max_length=128)
    overrides: list[OverrideStr] = Field(default_factory=list, max_length=64)


class TestRequest(BaseModel):
    """POST /runs/{id}/test: meta-test the attempt's checkpoint with K, L, episodes, domains."""

    __test__ = False  # not a pytest class
    model_config = ConfigDict(extra="forbid")
    shots: int | None = Field(default=None, ge=1, le=1000, description="K support examples per class")
    queries: int | None = Field(default=None, ge=1, le=1000, description="L query examples per class")
    episodes: int | None = Field(default=None, ge=1, le=1000, description="episodes per test family")
    domains: list[Domain] | None = Field(default=None, min_length=1, max_length=64)
