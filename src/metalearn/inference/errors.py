"""The errors a bad `metalearn predict` / `metalearn export` request raises: each message names
the key (and the file, and the line, where there is one). Here, apart from the modules that
raise them, so the command line can catch them before torch and datasets load."""
from __future__ import annotations


class SettingsError(ValueError):
    """A command line that cannot be run; the message names the key."""


class CheckpointError(ValueError):
    """A `ckpt=` that names no usable checkpoint; the message names it."""


class ExamplesError(ValueError):
    """A support or query file that cannot be used; the message names key and file."""


USER_ERRORS = (SettingsError, CheckpointError, ExamplesError)
