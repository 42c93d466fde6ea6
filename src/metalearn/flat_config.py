"""A nested config as one level of dotted keys, as overrides write them (`data.shots`)."""
from __future__ import annotations

from typing import Any


def flatten(config: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as {dotted.key: leaf value}; lists stay whole."""
    if not isinstance(config, dict):
        return {prefix: config} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in config.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, path))
        else:
            out[path] = value
    return out
