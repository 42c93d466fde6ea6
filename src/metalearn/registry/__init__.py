"""The run registry: every attempt, its metrics and test results, in SQLite or PostgreSQL.

Its names load on first use: importing the package (or the light modules in it, such as
launch_failure) loads neither SQLAlchemy nor Lightning, so the CLI and the API start quickly
and an entry point can hold the registry's hooks while a `registry=off` run never loads it.
"""
import importlib
from typing import Any

__all__ = [
    "NotFound",
    "RecordAttempt",
    "RegistryCallback",
    "RegistryError",
    "RegistryLogger",
    "SchemaError",
    "Store",
    "default_url",
    "record_attempt",
]
_LAZY = {
    "NotFound": "metalearn.registry.errors",
    "RecordAttempt": "metalearn.registry.hydra_callback",
    "RegistryCallback": "metalearn.registry.lightning",
    "RegistryError": "metalearn.registry.errors",
    "RegistryLogger": "metalearn.registry.lightning",
    "SchemaError": "metalearn.registry.errors",
    "Store": "metalearn.registry.store",
    "default_url": "metalearn.registry.engine",
    "record_attempt": "metalearn.registry.record",
}


def __getattr__(name: str) -> Any:
    """Import the module that defines name on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'metalearn.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
