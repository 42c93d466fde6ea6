"""Values written as Hydra override literals, so Hydra's grammar reads back the very value a
form gave: lists as [a,b], mappings as {k:v}, null, and strings quoted unless they are plainly
names (a string that reads as a number, bool or null, or holds any other character, is quoted)."""
from __future__ import annotations

import math
import re
from typing import Any

PLAIN = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")
KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WORDS = frozenset({"true", "false", "null", "inf", "nan"})  # Hydra reads these (any case) as values
_BACKSLASHES = re.compile(r"(\\*)('|$)")


class LiteralError(ValueError):
    """A value with no Hydra literal (a mapping key that is not a name)."""


def literal(value: Any) -> str:
    """value (None, bool, int, float, str, list, dict) as Hydra writes it in an override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return value if PLAIN.match(value) and value.lower() not in WORDS else quoted(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(literal(item) for item in value) + "]"
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str) or not KEY.match(k)]
        if bad:
            raise LiteralError(f"{str(bad[0])[:40]!r} is not an argument name (letters, digits, _)")
        return "{" + ",".join(f"{k}:{literal(v)}" for k, v in value.items()) + "}"
    raise LiteralError(f"no Hydra literal for a {type(value).__name__}")


def quoted(text: str) -> str:
    """text in single quotes: Hydra unescapes only backslashes before a quote or the end."""
    return "'" + _BACKSLASHES.sub(lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), text) + "'"


def override(key: str, value: Any) -> str:
    """`key=value` with value as a Hydra literal."""
    return f"{key}={literal(value)}"
