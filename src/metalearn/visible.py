"""Stored text shown safely: control characters written out, for terminals and web pages alike."""
from __future__ import annotations

import re

# C0 controls but tab and newline, DEL and C1 controls (\x9b is a one-byte CSI to some terminals)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """text with each control character written out (ESC as `\\x1b`), so a stored value shows
    what it holds instead of moving the cursor, clearing the screen or restyling the terminal."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
