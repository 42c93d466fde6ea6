"""The one check every child the server starts passes, at the moment it starts.

A queued row may come from a request, from a parent attempt's stored overrides (a meta-test)
or from the queue a restarted server finds; whoever wrote it, `LaunchCheck.argv` validates
its whole override list with the request's validator again, and derives the keys only the
server sets (train, test, ckpt_path) from the registry itself, never from the row.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metalearn.api.overrides import OverrideError, OverrideValidator
from metalearn.registry import schema
from metalearn.registry.errors import NotFound
from metalearn.registry.store import Store

log = logging.getLogger(__name__)
SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:+-]+$")
# Keys of a parent's overrides a meta-test sets anew (the server's, and the test settings).
TEST_KEYS = ("experiment", "train", "test", "ckpt_path", "data.shots", "data.queries",
             "data.test_episodes", "data.heldout")


class LaunchCheck:
    """Validates queued rows for the runner, and meta-test requests for the API."""

    def __init__(self, validator: OverrideValidator, store: Store, log_root: str | Path) -> None:
        self.validator, self.store = validator, store
        self.log_root = Path(log_root).resolve()

    def argv(self, row: dict[str, Any]) -> list[str]:
        """The run.py arguments for a queued row, validated now; OverrideError if not allowed."""
        experiment, overrides = row["experiment"], stored_overrides(row)
        if experiment is not None:
            head = f"experiment={experiment}"
            if not overrides or overrides[0] != head:
                raise OverrideError(f"the overrides of attempt {row['id']} do not start with {head}")
            overrides = overrides[1:]
        if row["kind"] == "test":
            return self.test_argv(experiment, row["parent_id"], overrides)
        self.validator.validate(experiment, overrides)
        return [*_head(experiment), *overrides]

    def test_argv(self, experiment: str | None, parent_id: int | None,
                  overrides: Sequence[str]) -> list[str]:
        """Meta-test arguments: the settable overrides, then the server's own keys."""
        if parent_id is None:
            raise OverrideError("a meta-test attempt needs a parent attempt")
        parent = self._parent(parent_id)
        if parent["experiment"] != experiment:
            raise OverrideError(f"attempt {parent_id} ran experiment {parent['experiment']!r}, "
                                f"not {experiment!r}")
        user = [o for o in overrides if _key(o) not in ("train", "test", "ckpt_path")]
        server = ["train=false", "test=true", f"ckpt_path={hydra_value(self.checkpoint(parent))}"]
        _, parent_plan = self.validator.check(experiment, self.trained_with(parent))
        _, plan = self.validator.check(experiment, user, server=server)
        trained = set(parent_plan.train_groups if parent_plan else ())
        tested = set(plan.test_groups if plan else ())
        if trained & tested:
            raise OverrideError(f"attempt {parent_id} meta-trained on {sorted(trained & tested)}: "
                                "meta-test it on groups it has not seen")
        return [*_head(experiment), *user, *server]

    def test_overrides(self, parent_id: int, asked: Sequence[str]) -> list[str]:
        """A meta-test's overrides (without experiment and the server's keys): the parent's,
        then asked; checked now as they will be again at launch."""
        parent = self._parent(parent_id)
        overrides = [*self.inherited(parent), *asked]
        self.test_argv(parent["experiment"], parent_id, overrides)
        return overrides

    def inherited(self, parent: dict[str, Any]) -> list[str]:
        """The parent's overrides a meta-test keeps: all but experiment, the test keys and
        Hydra's settings of the parent's own run (its output folder and the like)."""
        return [o for o in stored_overrides(parent)
                if _key(o) not in TEST_KEYS and not _key(o).startswith("hydra.")]

    def trained_with(self, parent: dict[str, Any]) -> list[str]:
        """The parent's overrides as it trained: its own held-out groups and sizes included
        (what `inherited` drops), so its plan names the groups it really trained on."""
        return [o for o in stored_overrides(parent)
                if _key(o) not in ("experiment", "train", "test", "ckpt_path")
                and not _key(o).startswith("hydra.")]

    def checkpoint(self, parent: dict[str, Any]) -> str:
        """The parent's checkpoint, if it is one of this server's: a file under its log root."""
        raw = parent["ckpt_path"]
        if not raw:
            raise OverrideError(f"attempt {parent['id']} recorded no checkpoint")
        path = Path(raw)
        if not path.is_absolute():
            path = self.log_root.parent / path
        path = path.resolve()
        if not path.is_relative_to(self.log_root) or not path.is_file():
            raise OverrideError(f"attempt {parent['id']}'s checkpoint is not a file under this "
                                f"server's log folder {self.log_root}; it will not be loaded")
        return str(path)

    def _parent(self, parent_id: int) -> dict[str, Any]:
        try:
            parent = self.store.get_attempt(parent_id)
        except NotFound as exc:
            raise OverrideError(f"no attempt {parent_id} to meta-test") from exc
        if parent["status"] != schema.COMPLETED:
            raise OverrideError(f"attempt {parent_id} is {parent['status']}; only a completed "
                                "attempt can be meta-tested")
        return parent


def stored_overrides(row: dict[str, Any]) -> list[str]:
    """A row's overrides column, which a shared registry's other writers may have filled with
    anything: a list of strings, else OverrideError."""
    overrides = row["overrides"] or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise OverrideError(f"the overrides of attempt {row['id']} are not a list of strings")
    return list(overrides)


def hydra_value(value: str) -> str:
    """value as a Hydra override literal (quoted unless plainly safe)."""
    if SAFE_VALUE.match(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _head(experiment: str | None) -> list[str]:
    return [f"experiment={experiment}"] if experiment is not None else []


def _key(override: str) -> str:
    return override.partition("=")[0].lstrip("+~")
