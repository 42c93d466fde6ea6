"""The checkpoint file a run is given (ckpt_path): checked before anything is built, so a
missing, empty, random or cut-short file is refused by name with what is wrong with it."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import torch

ZIP_MAGIC = b"PK\x03\x04"  # torch.save (and so Lightning) writes a zip archive


def check_checkpoint(path: str) -> None:
    """A checkpoint that exists and loads as plain weights and numbers, else an error naming it.

    Loaded with `weights_only=True` (PyTorch's restricted unpickler): a checkpoint file runs
    no code, whoever wrote it. The file's format is told first, since PyTorch's own message for
    a file that is no zip archive speaks of mmap and zipfile serialization.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"ckpt_path {path}: no such checkpoint file")
    reason = format_problem(file)
    if reason is not None:
        raise ValueError(f"ckpt_path {path}: cannot load it as a checkpoint: {reason}")
    try:
        torch.load(file, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ValueError(f"ckpt_path {path}: cannot load it as a checkpoint ({first[:300]})") from exc


def format_problem(file: Path) -> str | None:
    """Why file is not in the format torch.save writes (a zip archive), or None if it is."""
    with file.open("rb") as fh:
        head = fh.read(len(ZIP_MAGIC))
    if not head:
        return "not a PyTorch checkpoint (an empty file)"
    if head != ZIP_MAGIC:
        return ("not a PyTorch checkpoint (not a zip archive, which torch.save and Lightning "
                "write; a file saved by PyTorch before 1.6 has to be saved again)")
    if not zipfile.is_zipfile(file):
        return "a zip archive cut short (its end is missing: copied or downloaded in part?)"
    return None
