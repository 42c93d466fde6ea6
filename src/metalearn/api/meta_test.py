"""What a meta-test request asks of a finished attempt, as the overrides of its test attempt;
one function for POST /runs/{id}/test and the meta-test page, so both ask the same."""
from __future__ import annotations

from typing import Any

from metalearn.api.models import TestRequest
from metalearn.registry import schema

# Each setting of a TestRequest and the config key it sets.
TEST_SETTINGS = (("shots", "data.shots"), ("queries", "data.queries"), ("episodes", "data.test_episodes"),
                 ("steps", "algorithm.eval_inner_steps"))


def untestable(parent: dict[str, Any]) -> str | None:
    """Why the attempt cannot be meta-tested (answered with 409), else None."""
    if parent["status"] == schema.COMPLETED and parent["ckpt_path"]:
        return None
    return (f"attempt {parent['id']} is {parent['status']} with {'a' if parent['ckpt_path'] else 'no'} "
            "checkpoint; only a completed attempt with a checkpoint can be meta-tested")


def meta_test_overrides(body: TestRequest) -> list[str]:
    """The overrides of the meta-test settings that were given (the attempt's own for the rest)."""
    out = [f"{key}={getattr(body, field)}" for field, key in TEST_SETTINGS if getattr(body, field) is not None]
    if body.domains:
        out.append(f"data.heldout=[{','.join(body.domains)}]")
    return out

