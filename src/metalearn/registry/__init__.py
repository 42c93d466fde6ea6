"""The run registry: every attempt, its metrics and test results, in SQLite or PostgreSQL.

The Lightning pieces load lazily so the CLI and the API stay quick to start.
"""
from typing import Any

from metalearn.registry.engine import default_url
from metalearn.registry.errors import NotFound, RegistryError, SchemaError
from metalearn.registry.store import Store

__all__ = [
    "NotFound",
    "RegistryCallback",
    "RegistryError",
    "RegistryLogger",
    "SchemaError",
    "Store",
    "default_url",
    "record_attempt",
]
_LAZY = {
    "RegistryCallback": "metalearn.registry.lightning",
    "RegistryLogger": "metalearn.registry.lightning",
    "record_attempt": "metalearn.registry.record",
}


def __getattr__(name: str) -> Any:
    """Import the Lightning logger, callback and record_attempt on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'metalearn.registry' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
