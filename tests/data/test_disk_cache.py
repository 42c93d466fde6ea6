"""The on-disk dataset cache: keyed by file contents, and safe when two runs build at once."""
import os

from datasets import Dataset

from metalearn.data.disk_cache import cached_dataset, digest


def test_digest_follows_contents_not_modification_times(tmp_path):
    f = tmp_path / "reviews.txt"
    f.write_text("great blender\t1\n")
    before = digest([f], "tok", 128)
    os.utime(f, (1_000_000, 1_000_000))  # a re-copied data folder: same bytes, new mtimes
    assert digest([f], "tok", 128) == before
    assert digest([f], "tok", 64) != before
    f.write_text("awful blender\t0\n")
    assert digest([f], "tok", 128) != before


def test_a_run_that_loses_the_race_uses_the_winners_copy(tmp_path):
    """Another process saves the same entry while this one builds it: no crash, one copy."""
    target = tmp_path / "cache" / "reviews-abc"
    rows = {"x": [1, 2, 3]}

    def build_while_another_run_saves_first():
        cached_dataset(target, lambda: Dataset.from_dict(rows))  # the other run wins
        return Dataset.from_dict(rows)

    data, built = cached_dataset(target, build_while_another_run_saves_first)
    assert built and data["x"] == [1, 2, 3]
    assert sorted(p.name for p in target.parent.iterdir()) == ["reviews-abc"]  # no temp left
    again, built = cached_dataset(target, lambda: Dataset.from_dict({"x": [9]}))
    assert not built and again["x"] == [1, 2, 3]
