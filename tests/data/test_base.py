"""The episode settings every DataModule takes (EpisodeSettings): keyword-only, checked by key
before any data is read."""
from __future__ import annotations

import pytest

from metalearn.data.episode import EpisodeSettings
from metalearn.data.omniglot_datamodule import OmniglotEpisodes
from metalearn.data.review_datamodule import ReviewEpisodes
from metalearn.data.sinusoid import SinusoidEpisodes


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


@pytest.mark.parametrize("cls", [ReviewEpisodes, OmniglotEpisodes, SinusoidEpisodes])
def test_episode_settings_are_keyword_only_and_a_misspelt_key_is_named(cls, tmp_path):
    kwargs = {} if cls is SinusoidEpisodes else {"path": str(tmp_path / "nothing-here")}
    with pytest.raises(TypeError, match=rf"data\.shot: not a setting of {cls.__name__}"):
        cls(**kwargs, shot=5)
    with pytest.raises(TypeError, match="positional"):
        cls(*kwargs.values(), 5, 5)  # which is shots and which queries: not guessed


def test_settings_are_integers_and_counts_at_least_one_named_by_key():
    base = dict(shots=5, queries=5, meta_batch_size=4, steps_per_epoch=10, val_episodes=1,
                test_episodes=2)
    with pytest.raises(ValueError, match=r"data\.shots must be an integer, got '5'"):
        EpisodeSettings(**{**base, "shots": "5"})
    with pytest.raises(ValueError, match=r"data\.queries must be >= 1 \(got 0\); data\.val_episodes"):
        EpisodeSettings(**{**base, "queries": 0, "val_episodes": 0})
    with pytest.raises(ValueError, match=r"data\.ways must be >= 2 \(got 1\)"):
        EpisodeSettings(**base, ways=1)


def test_training_sizes_follow_shots_and_queries_unless_set():
    settings = EpisodeSettings(shots=1, queries=15, meta_batch_size=5, steps_per_epoch=100,
                               val_episodes=50, test_episodes=200)
    assert settings.train_sizes == settings.eval_sizes == (1, 15)
    assert settings.updated({"shots": 8}, "X").train_sizes == (8, 15)  # null follows the new shots
    ten = settings.updated({"train_shots": 10, "train_queries": 5}, "X")
    assert (ten.train_sizes, ten.eval_sizes) == ((10, 5), (1, 15))


def test_a_source_refuses_ways_it_cannot_serve(tmp_path):
    with pytest.raises(ValueError, match=r"data\.ways must be 2 \(negative, positive\), got 3"):
        ReviewEpisodes(path=str(tmp_path), ways=3)
    with pytest.raises(ValueError, match=r"data\.ways must be null: a sinusoid task has no classes"):
        SinusoidEpisodes(ways=5)
    with pytest.raises(ValueError, match=r"data\.ways must be >= 2 \(got null\)"):
        OmniglotEpisodes(path=str(tmp_path), ways=None)
