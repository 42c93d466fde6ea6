"""A checkpoint named by ckpt_path is checked before anything is built: a missing, empty,
random or cut-short file is refused with its name and what is wrong with it."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch

from metalearn.checkpoint_file import check_checkpoint


def _saved(path: Path) -> Path:
    torch.save({"state_dict": {"w": torch.ones(64, 64)}, "epoch": 3}, path)
    return path


def test_a_checkpoint_torch_saved_passes(tmp_path: Path) -> None:
    check_checkpoint(str(_saved(tmp_path / "good.ckpt")))


@pytest.mark.parametrize("content, reason", [
    (b"", "not a PyTorch checkpoint (an empty file)"),
    (os.urandom(4096), "not a PyTorch checkpoint (not a zip archive"),
    (b"\x80\x02}q\x00.", "not a PyTorch checkpoint (not a zip archive"),  # a bare pickle
])
def test_a_file_that_is_no_checkpoint_says_what_it_is(tmp_path: Path, content: bytes,
                                                       reason: str) -> None:
    path = tmp_path / "some.ckpt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(f"ckpt_path {path}: cannot load it as a "
                                                   f"checkpoint: {reason}")) as caught:
        check_checkpoint(str(path))
    assert "mmap" not in str(caught.value) and "zipfile" not in str(caught.value)


def test_a_checkpoint_cut_short_is_named_so(tmp_path: Path) -> None:
    path = _saved(tmp_path / "cut.ckpt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="a zip archive cut short"):
        check_checkpoint(str(path))


def test_a_missing_file_and_a_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"ckpt_path {tmp_path / 'no.ckpt'}: no such checkpoint file"):
        check_checkpoint(str(tmp_path / "no.ckpt"))
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        check_checkpoint(str(tmp_path))


def test_a_pickled_object_is_not_run(tmp_path: Path) -> None:
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "payload": Path("/")}, path)  # any class outside the allowlist
    with pytest.raises(ValueError, match="cannot load it as a checkpoint"):
        check_checkpoint(str(path))
