"""What a registry column can hold on each backend, so a value that does not fit is refused by
name before anything is written, instead of failing inside the database driver.

SQLite stores any INTEGER as a 64-bit signed integer and does not enforce VARCHAR lengths;
PostgreSQL's INTEGER is 32-bit, its BIGINT 64-bit, its VARCHAR(n) holds n characters and no
text column holds a NUL character. A float column holds what a Python float holds.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Column, Float, Integer, SmallInteger, String

WIDEST = "sqlite"  # the backend whose columns hold the most: the check when no registry is named


def integer_bits(column: Column, dialect: str) -> int | None:
    """The width in bits of a signed integer column on dialect; None if it is no integer."""
    kind = column.type
    if not isinstance(kind, Integer):
        return None
    if dialect == "sqlite" or isinstance(kind, BigInteger):
        return 64
    return 16 if isinstance(kind, SmallInteger) else 32


def problem(column: Column, value: Any, dialect: str = WIDEST) -> str | None:
    """Why value cannot be stored in column on dialect (`sqlite`, `postgresql`), or None."""
    if value is None:
        return None
    bits = integer_bits(column, dialect)
    if bits is not None and isinstance(value, int):
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        if not low <= value <= high:
            return f"{_shown(value)} is out of range ({bits}-bit signed integer: {low} to {high})"
        return None
    if isinstance(column.type, Float) and isinstance(value, (int, float)):
        try:
            float(value)
        except OverflowError:
            return f"{_shown(value)} is too large for a float"
        return None
    if isinstance(column.type, String) and isinstance(value, str) and dialect != "sqlite":
        if "\x00" in value:
            return f"{value!r:.80} holds a NUL character, which {dialect} text cannot hold"
        length = column.type.length
        if length is not None and len(value) > length:
            return f"{len(value)} characters are more than its {length} ({dialect} VARCHAR({length}))"
    return None



def _shown(number: int) -> str:
    """An integer as written, or by its length where that runs past 40 digits."""
    digits = len(str(abs(number)))
    return str(number) if digits <= 40 else f"a {digits}-digit integer"
