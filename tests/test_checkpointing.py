"""metalearn.checkpointing.ModelCheckpoint: the ranking a resumed run takes over (the end to
end case: tests/test_train.py, a run resumed into a new folder)."""
from __future__ import annotations

import pytest
import torch

from metalearn.checkpointing import ModelCheckpoint


def state(folder, best: str) -> dict:
    return {"dirpath": str(folder), "best_model_path": best, "best_model_score": torch.tensor(0.75),
            "best_k_models": {best: torch.tensor(0.75)}, "kth_best_model_path": best,
            "kth_value": torch.tensor(0.75), "monitor": "val/acc"}


def test_a_resume_into_another_folder_keeps_the_score_of_the_best_file(tmp_path, recwarn):
    best = tmp_path / "before" / "step000125.ckpt"
    best.parent.mkdir()
    best.write_bytes(b"")
    callback = ModelCheckpoint(dirpath=tmp_path / "after", monitor="val/acc", mode="max")
    callback.load_state_dict(state(best.parent, str(best)))
    assert float(callback.best_model_score) == 0.75 and list(callback.best_k_models) == [str(best)]
    assert not [w for w in recwarn if "won't be reloaded" in str(w.message)]  # Lightning's, untrue here


def test_where_the_best_file_is_gone_the_ranking_starts_again(tmp_path):
    gone = str(tmp_path / "before" / "step000125.ckpt")
    callback = ModelCheckpoint(dirpath=tmp_path / "after", monitor="val/acc", mode="max")
    with pytest.warns(UserWarning, match="won't be reloaded"):
        callback.load_state_dict(state(tmp_path / "before", gone))
    assert callback.best_model_score is None and callback.best_k_models == {}
