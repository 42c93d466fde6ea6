"""Values as the registry stores them: times in naive UTC, floats with NaN as NULL."""
from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any


def utcnow() -> datetime:
    """Naive UTC now: the registry stores every time in UTC."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def finite_or_none(value: Any) -> float | None:
    """A float for storage; NaN becomes None (SQLite cannot hold NaN)."""
    number = float(value)
    return None if math.isnan(number) else number
