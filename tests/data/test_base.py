"""Settings every episodic DataModule shares are checked by both, before any data is read."""
from __future__ import annotations

import pytest

from metalearn.data.omniglot_datamodule import OmniglotEpisodes
from metalearn.data.review_datamodule import ReviewEpisodes


@pytest.mark.parametrize("cls", [ReviewEpisodes, OmniglotEpisodes])
@pytest.mark.parametrize("setting, value", [
    ("shots", 0), ("queries", 0), ("train_shots", 0), ("train_queries", 0), ("meta_batch_size", 0),
    ("steps_per_epoch", 0),
    ("test_episodes", 0), ("num_workers", -1)])
def test_bad_shared_settings_are_refused_before_reading(cls, setting, value, tmp_path):
    # the path does not exist either: the settings are checked first, nothing is read
    with pytest.raises(ValueError, match=rf"data\.{setting} must be >= "):
        cls(path=str(tmp_path / "nothing-here"), cache_dir=str(tmp_path), **{setting: value})


@pytest.mark.parametrize("cls", [ReviewEpisodes, OmniglotEpisodes])
def test_good_shared_settings_pass_on_to_the_data_checks(cls, tmp_path):
    with pytest.raises(FileNotFoundError):  # good settings pass on to the data path check
        cls(path=str(tmp_path / "nothing-here"), cache_dir=str(tmp_path), shots=3, seed=7)
