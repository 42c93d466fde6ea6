"""Messages a run would print that its user cannot act on, each filtered by its own text.

Only these: everything else Lightning, datasets or transformers say still shows.

- torch's FutureWarning about `LeafSpec`, raised inside Lightning's own code;
- Lightning's "Tip: ... litlogger" advertisement, on every run;
- Lightning's note that `Trainer(limit_val_batches=1.0)` uses all batches (the shipped default);
- datasets' and transformers' tqdm bars where stderr is not a terminal: in a log file each
  bar's frames run together into one line thousands of characters long.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import warnings

LIGHTNING_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                     "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
LIGHTNING_NOISE = (
    re.compile(r"💡 Tip: .*\blitlogger\b"),
    re.compile(r"`Trainer\(limit_val_batches=1\.0\)` was configured so 100% of the batches will be used\.+$"),
)
LEAFSPEC_WARNING = r"`isinstance\(treespec, LeafSpec\)` is deprecated"
# -W syntax: the message's start, up to its comma (PYTHONWARNINGS is comma-separated)
LEAFSPEC_ENV_FILTER = "ignore:`isinstance(treespec:FutureWarning"


class DropMessages(logging.Filter):
    """Drops the records whose message matches one of `patterns` (re.match); keeps the rest."""

    def __init__(self, patterns: tuple[re.Pattern[str], ...]) -> None:
        super().__init__()
        self.patterns = patterns

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.match(message) for p in self.patterns)


def quiet_known_noise() -> None:
    """Install the filters above (again, harmlessly: each is added once)."""
    warnings.filterwarnings("ignore", message=LEAFSPEC_WARNING, category=FutureWarning)
    # the same for the processes a run starts (trainer=ddp_sim spawns fresh interpreters)
    given = os.environ.get("PYTHONWARNINGS", "")
    if LEAFSPEC_ENV_FILTER not in given.split(","):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [given, LEAFSPEC_ENV_FILTER]))
    for name in LIGHTNING_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropMessages) for f in logger.filters):
            logger.addFilter(DropMessages(LIGHTNING_NOISE))
    if not _shows_bars():
        _no_hf_bars()


def _shows_bars() -> bool:
    """Whether stderr draws a bar as a person sees it: a terminal, or Jupyter."""
    import rich

    return bool(getattr(sys.stderr, "isatty", None)) and sys.stderr.isatty() or rich.get_console().is_jupyter


def _no_hf_bars() -> None:
    """datasets' and transformers' (huggingface_hub's) bars off, unless the user chose by their
    own variable: by the variable where the library is not loaded yet, else by its call."""
    for module, variable, disable in (
            ("datasets", "HF_DATASETS_DISABLE_PROGRESS_BARS", "disable_progress_bars"),
            ("transformers.utils.logging", "HF_HUB_DISABLE_PROGRESS_BARS", "disable_progress_bar")):
        if variable in os.environ:
            continue
        os.environ[variable] = "1"  # read when the library loads, here and in worker processes
        if module in sys.modules:
            getattr(sys.modules[module], disable)()
