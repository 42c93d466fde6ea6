"""`metalearn train --help` (and `python run.py --help`): what to type, read from the config
files themselves, with no config composed and neither torch nor Lightning loaded.

Hydra's own `--help` shows its banner and the base config, not an experiment's; the way to see
an experiment's config is `--cfg job`, which this help says. Hydra's flags: `--hydra-help`.
"""
from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

from metalearn.resolvers import CONFIG_DIR_ENV

# The configs' folder, found without importing metalearn.conf (which loads the resolvers).
CONF = Path(next(iter(find_spec("metalearn.conf").submodule_search_locations)))
HELP_FLAGS = ("--help", "-h")


def wants_help(argv: Sequence[str]) -> bool:
    """Whether a train command line asks for this help."""
    return any(arg in HELP_FLAGS for arg in argv)


def config_dirs(argv: Sequence[str]) -> list[Path]:
    """The shipped configs, then the user's: `--config-dir`/`-cd DIR` and `$METALEARN_CONFIG_DIR`."""
    dirs = [CONF]
    for i, arg in enumerate(argv):
        if arg in ("--config-dir", "-cd") and i + 1 < len(argv):
            dirs.append(Path(argv[i + 1]).expanduser())
        elif arg.startswith("--config-dir="):
            dirs.append(Path(arg.split("=", 1)[1]).expanduser())
    dirs += [Path(d).expanduser() for d in os.environ.get(CONFIG_DIR_ENV, "").split(os.pathsep) if d]
    return dirs


def options(group: str, dirs: Sequence[Path]) -> list[str]:
    """The option names of a config group (its .yaml files) across `dirs`, sorted, once each."""
    return sorted({f.stem for d in dirs for f in (d / group).glob("*.yaml")})


def groups(dirs: Sequence[Path]) -> list[str]:
    """The top-level config groups that hold options, but Hydra's own."""
    found = {p.name for d in dirs if d.is_dir() for p in d.iterdir() if p.is_dir() and any(p.glob("*.yaml"))}
    return sorted(found - {"hydra", "experiment"})  # experiments have their own list


def summary(path: Path, room: int) -> str:
    """An experiment file's first comment line (what it runs), cut to `room` characters."""
    first = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.strip()
        if text.startswith("#") and not text.startswith("# @package"):
            first = text.lstrip("# ").strip()
            break
        if text and not text.startswith("#"):
            break
    return first if len(first) <= room else first[: room - 3].rstrip() + "..."


def help_text(argv: Sequence[str] = (), width: int | None = None) -> str:
    """The whole help; `argv` (the rest of the command line) names the config to show."""
    width = width or min(shutil.get_terminal_size((100, 24)).columns, 120)
    dirs = config_dirs(argv)
    shown = [a for a in argv if a not in HELP_FLAGS]
    lines = [
        "metalearn train: meta-train, meta-validate and meta-test one experiment, composed by Hydra",
        "(`python run.py ...` in a clone is the same command).",
        "",
        "usage: metalearn train experiment=NAME [group=option ...] [key=value ...] [--cfg job] [-m]",
        "",
        "experiments (experiment=NAME; each sets its data, model, algorithm and their values):",
    ]
    experiments: dict[str, Path] = {}
    for d in reversed(dirs):  # a shipped file wins over a user's of the same name, as in Hydra
        experiments.update({f.stem: f for f in sorted((d / "experiment").glob("*.yaml"))})
    column = max((len(n) for n in experiments), default=0) + 4
    for name in sorted(experiments):
        about = summary(experiments[name], room=max(width - column, 20))
        lines.append(f"  {name:<{column - 2}}{about}".rstrip())
    lines += ["", "config groups (group=option; an experiment chooses its own, an override replaces it):"]
    for group in groups(dirs):
        names = ", ".join(options(group, dirs))
        lines += textwrap.wrap(names, width=width, initial_indent=f"  {group}: ",
                               subsequent_indent=" " * (len(group) + 4))
    lines += [
        "",
        "see what a command would run (the composed config; nothing is trained):",
        f"  metalearn train {' '.join(shown) if shown else 'experiment=reptile_amazon'} --cfg job",
        "",
        "examples:",
        "  metalearn train experiment=reptile_amazon debug=fast     # the whole pipeline in about a minute",
        "  metalearn train experiment=reptile_amazon seed=7 data.shots=8 algorithm.inner_steps=10",
        "  metalearn train experiment=reptile_amazon threads=2      # torch threads (default: 1)",
        "  metalearn train -m experiment=reptile_amazon algorithm.inner_lr=0.02,0.05   # a sweep",
        "",
        f"your own configs: --config-dir DIR (DIR/experiment/NAME.yaml), or the folders in ${CONFIG_DIR_ENV}.",
        "Hydra's own flags (--multirun, --cfg, --resolve, --info, ...): metalearn train --hydra-help.",
    ]
    return "\n".join(lines) + "\n"
