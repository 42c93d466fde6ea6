"""Lightning's ModelCheckpoint, with the best checkpoint of a resumed run chosen over all its steps.

A run resumed from another run's checkpoint writes into its own folder. Lightning then reloads
only the best file's path, not its score, so the first check after the resume becomes the best
whatever it scored: `best` would mean best since the resume, and the meta-test would score
another checkpoint than the uninterrupted run's. Here the score, and the files it ranks, come
back as long as those files still exist. They stay where they are: Lightning deletes a file it
no longer ranks only inside its own folder.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from pytorch_lightning.callbacks import ModelCheckpoint as LightningModelCheckpoint

log = logging.getLogger(__name__)


class ModelCheckpoint(LightningModelCheckpoint):
    """ModelCheckpoint whose ranking survives a resume into another folder."""

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        moved = state_dict.get("dirpath", self.dirpath) != self.dirpath
        ranked = state_dict.get("best_k_models") or {}
        missing = [path for path in ranked if not Path(path).exists()]
        with warnings.catch_warnings():
            if moved and ranked and not missing:  # Lightning's "won't be reloaded": they are, below
                warnings.filterwarnings("ignore", message="The dirpath has changed")
            super().load_state_dict(state_dict)
        if not moved or not ranked:
            return
        if missing:
            log.warning("resumed run: the best checkpoints so far are gone (%s); the best is chosen "
                        "among this run's checks only", ", ".join(missing))
            return
        self.best_k_models = dict(ranked)
        self.best_model_score = state_dict["best_model_score"]
        self.kth_best_model_path = state_dict.get("kth_best_model_path", self.kth_best_model_path)
        self.kth_value = state_dict.get("kth_value", self.kth_value)
        log.info("resumed run: the best checkpoint so far is %s (%s %.4f)", self.best_model_path, self.monitor,
                 float(self.best_model_score))
