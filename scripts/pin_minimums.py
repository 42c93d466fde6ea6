"""Print setup.cfg's requirements with every `>=X` pinned to `==X` (pip constraints).

Usage: python scripts/pin_minimums.py [setup.cfg] [extra ...]  (default extras: those `dev`
pulls in). A requirement without a `>=` minimum is an error: every one must declare its floor.
"""
from __future__ import annotations

import configparser
import re
import sys
from pathlib import Path

SELF = "metalearn-lightning"
REQ = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?P<extras>\[[^\]]*\])?"
                 r"\s*>=\s*(?P<ver>[^,;\s]+)(\s*,\s*<[^,;\s]+)?$")  # an upper bound may follow


def requirements(cfg: configparser.ConfigParser, extras: list[str]) -> list[str]:
    """install_requires plus the named extras, following `metalearn-lightning[...]` references."""
    lines = cfg["options"]["install_requires"].split("\n")
    table = cfg["options.extras_require"]
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        seen.add(extra)
        for line in table[extra].split("\n"):
            nested = re.match(rf"^{SELF}\[(.*)\]$", line.strip())
            if nested:
                todo.extend(e.strip() for e in nested.group(1).split(","))
            else:
                lines.append(line)
    return [line.strip() for line in lines if line.strip()]


def pins(lines: list[str]) -> list[str]:
    """`name>=X` -> `name==X` (extras dropped: constraints may not carry them)."""
    out = []
    for line in lines:
        match = REQ.match(line)
        if match is None:
            raise SystemExit(f"setup.cfg: {line!r} declares no `>=` minimum to pin")
        out.append(f"{match['name']}=={match['ver']}")
    return out


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "setup.cfg"
    extras = argv[1:] or ["dev"]
    cfg = configparser.ConfigParser()
    cfg.read(path)
    sys.stdout.write("\n".join(pins(requirements(cfg, extras))) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
