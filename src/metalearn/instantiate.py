"""Objects from config nodes: Hydra's `instantiate`, with our constructors' own errors shown."""
from __future__ import annotations

from typing import Any

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig


def build(node: DictConfig, **kwargs: Any) -> Any:
    """`hydra.utils.instantiate`, re-raising a constructor's own error unwrapped.

    Our constructors validate their arguments and name the config key in the message; Hydra's
    wrapper would bury that under its own traceback text.
    """
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, (ValueError, TypeError, FileNotFoundError, ImportError)):
            raise err.__cause__ from None
        raise


def instantiate_dict(group: DictConfig | None) -> list:
    """Instantiate each `_target_` entry of a config group (loggers, callbacks)."""
    if not group:
        return []
    return [build(c) for c in group.values() if c and "_target_" in c]
