"""The Omniglot reader and DataModule on the real zips in shared/data/omniglot."""
from __future__ import annotations

import zipfile
from collections import Counter

import numpy as np
import pytest
import torch

from metalearn.data.omniglot import LAKE_ZIP, to_ink
from metalearn.data.omniglot_datamodule import FAMILY, OmniglotEpisodes
from tests.conftest import ROOT

OMNIGLOT = ROOT.parent / "shared" / "data" / "omniglot"
CACHE = str(ROOT / ".cache" / "metalearn")


def make(**kwargs) -> OmniglotEpisodes:
    """A small-episode DataModule on the real zips, set up (decoded once, then cached)."""
    args = dict(path=str(OMNIGLOT), cache_dir=CACHE, ways=5, shots=1, queries=3,
                val_episodes=4, test_episodes=4)
    dm = OmniglotEpisodes(**{**args, **kwargs})
    dm.setup("fit")
    return dm


@pytest.fixture(scope="module")
def dm() -> OmniglotEpisodes:
    return make()


@pytest.fixture(scope="module")
def lake() -> OmniglotEpisodes:
    return make(ways=20, test_set="lake_runs")


def char_of(dm: OmniglotEpisodes, idx: list[int]) -> np.ndarray:
    """Character id of example indices (4 * row + quarter turns)."""
    return dm.labels[np.asarray(idx) // 4]


def test_union_of_the_zips_is_242_characters_of_20_drawers(dm):
    assert len(dm.data) == 4840 and len(set(dm.labels.tolist())) == 242
    drawers = Counter(zip(dm.labels.tolist(), dm.data["drawer"], strict=False))
    assert set(drawers.values()) == {1} and len(drawers) == 4840  # 20 distinct drawers each
    assert set(dm.data["drawer"]) == set(range(1, 21))
    chars = {(a, c) for a, c in zip(dm.data["alphabet"], dm.data["character"], strict=False)}
    per_alphabet = Counter(a for a, _ in chars)
    assert per_alphabet["Greek"] == 24 and per_alphabet["Latin"] == 26 and len(per_alphabet) == 8
    assert dm.images.shape == (4840, 28, 28) and dm.images.dtype == np.uint8
    assert dm.images.mean() < 64  # ink is 255 on a 0 background: mostly background


def test_second_setup_reads_the_cache(dm):
    again = make()
    assert not again.decoded_now and np.array_equal(again.images, dm.images)


def test_episodes_are_n_way_k_plus_l_disjoint_float_images(dm):
    for key in [(0, 0), (3, 7)]:
        spec = dm.train_sampler.train_episode(dm.episodes.seed, *key)
        ep = dm.build(spec)
        assert ep.support_x.shape == (5, 1, 28, 28) and ep.query_x.shape == (15, 1, 28, 28)
        assert ep.support_x.dtype == torch.float32
        assert 0 <= ep.support_x.min() <= ep.support_x.max() <= 1
        assert Counter(ep.support_y.tolist()) == {c: 1 for c in range(5)}
        assert Counter(ep.query_y.tolist()) == {c: 3 for c in range(5)}
        assert not set(spec.support) & set(spec.query)
        for label in range(5):  # one class (character and rotation) per label
            idx = [i for i, y in zip(spec.support + spec.query,
                                     spec.support_labels + spec.query_labels, strict=False) if y == label]
            assert len(set(char_of(dm, idx).tolist())) == 1 and len({i % 4 for i in idx}) == 1


def test_train_shots_shape_meta_training_episodes_only():
    dm = make(train_shots=4, train_queries=2)
    train = dm.build(dm.train_sampler.train_episode(dm.episodes.seed, 0, 0))
    assert Counter(train.support_y.tolist()) == {c: 4 for c in range(5)}
    assert Counter(train.query_y.tolist()) == {c: 2 for c in range(5)}
    for spec in dm.val_specs + dm.test_specs:  # evaluation keeps shots=1, queries=3
        assert (len(spec.support), len(spec.query)) == (5, 15)


def test_episodes_are_fixed_by_the_seed(dm):
    a = dm.train_sampler.train_episode(0, 1, 2)
    assert a == dm.train_sampler.train_episode(0, 1, 2)
    assert a != dm.train_sampler.train_episode(1, 1, 2)
    other = make(seed=99)
    assert other.val_specs == dm.val_specs and other.test_specs == dm.test_specs


def test_meta_train_val_test_characters_are_disjoint(dm):
    train, val, test = (set(dm.split[k]) for k in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test
    assert len(train | val | test) == 242 and (len(train), len(val), len(test)) == (145, 37, 60)
    drawn = {int(c) for k in range(20) for c in char_of(
        dm, dm.train_sampler.train_episode(0, 0, k).support)}
    assert drawn <= train
    assert {int(c) for s in dm.val_specs for c in char_of(dm, s.query)} <= val
    assert {int(c) for s in dm.test_specs for c in char_of(dm, s.query)} <= test


def test_rotations_are_distinct_classes_of_meta_train_only(dm):
    classes = dm.train_sampler.pools[FAMILY]
    assert len(classes) == 4 * 145
    name = sorted(classes)[0].rsplit("/", 1)[0]
    pools = [classes[f"{name}/rot{d}"] for d in (0, 90, 180, 270)]
    assert len({tuple(p) for p in pools}) == 4
    x0, x90 = dm.stack(dm.images, pools[0][:1]), dm.stack(dm.images, pools[1][:1])
    assert torch.equal(x90, torch.rot90(x0, 1, dims=(-2, -1))) and not torch.equal(x0, x90)
    assert all(name.endswith("/rot0") for name in dm.plan.val_sampler.pools[FAMILY])
    assert len(make(rotations=False).train_sampler.pools[FAMILY]) == 145


def test_lake_runs_are_20_one_shot_20_way_episodes_with_their_labels(lake):
    episodes = list(lake.test_dataloader())
    assert len(episodes) == 20
    with zipfile.ZipFile(OMNIGLOT / LAKE_ZIP) as z:
        for r, ep in enumerate(episodes, start=1):
            assert ep.support_x.shape == (20, 1, 28, 28) and ep.query_x.shape == (20, 1, 28, 28)
            assert (ep.ways, ep.shots, ep.queries, ep.group) == (20, 1, 1, "lake_runs")
            assert ep.support_y.tolist() == list(range(20))
            lines = z.read(f"run{r:02d}/class_labels.txt").decode().split()
            for i, (item, cls) in enumerate(zip(lines[::2], lines[1::2], strict=False)):
                assert item == f"run{r:02d}/test/item{i + 1:02d}.png"
                label = int(cls[-6:-4]) - 1
                assert ep.query_y[i] == label
                want = torch.from_numpy(to_ink(z.read(item), 28) / 255.0).float()
                assert torch.allclose(ep.query_x[i, 0], want)
                support = torch.from_numpy(to_ink(z.read(cls), 28) / 255.0).float()
                assert torch.allclose(ep.support_x[label, 0], support)


@pytest.mark.parametrize("kwargs, message", [
    (dict(ways=40), r"data.ways=40 but the meta-val split has only 37 classes"),
    (dict(shots=5, queries=16), r"data.shots \+ data.queries = 5 \+ 16 = 21 .* only 20 drawers"),
    (dict(train_shots=18), r"data.train_shots \+ data.train_queries = 18 \+ 3 = 21"),
    (dict(ways=5, test_set="lake_runs"), r"lake_runs is 20-way 1-shot"),
    (dict(test_set="mnist"), r"data.test_set must be one of"),
])
def test_bad_input_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(**kwargs)


def test_a_missing_zip_is_named(tmp_path):
    first, second = "images_background_small1.zip", "images_background_small2.zip"
    (tmp_path / first).symlink_to(OMNIGLOT / first)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / second)):
        OmniglotEpisodes(path=str(tmp_path), cache_dir=str(tmp_path))
    (tmp_path / second).symlink_to(OMNIGLOT / second)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / LAKE_ZIP)):
        OmniglotEpisodes(path=str(tmp_path), cache_dir=str(tmp_path), ways=20,
                         test_set="lake_runs")
