"""data=image_folder: folders of tiny PNGs the tests write, and Omniglot's images extracted."""
from __future__ import annotations

import logging
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from metalearn.data.image_folder import ImageFolderEpisodes
from metalearn.train import build
from tests.conftest import ROOT, compose_config, run_py, scalars

OMNIGLOT_ZIP = ROOT.parent / "shared" / "data" / "omniglot" / "images_background_small1.zip"


def write_folder(root: Path, groups: dict[str, int] | None = None, classes: int = 8,
                 images: int = 6, size: int = 12) -> Path:
    """`root/<group>/<class>/<n>.png` (or `root/<class>/<n>.png` without groups): each class a
    gray level, so an image's class can be read off its pixels."""
    layout = groups or {"": classes}
    level = 0
    for group, n_classes in layout.items():
        for c in range(n_classes):
            folder = root / group / f"class{c:02d}" if group else root / f"class{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            level += 1
            for i in range(images):
                pixels = np.full((size, size + i % 3), 5 * level, dtype=np.uint8)  # not square
                Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


def make(root: Path, cache: Path, **kwargs) -> ImageFolderEpisodes:
    args = dict(path=str(root), ways=3, shots=1, queries=2, image_size=8, val_episodes=3,
                test_episodes=4, cache_dir=str(cache))
    d = ImageFolderEpisodes(**{**args, **kwargs})
    return d


@pytest.fixture
def grouped(tmp_path) -> Path:
    return write_folder(tmp_path / "scripts", groups={"north": 6, "south": 5, "east": 4})


def level_of(dm: ImageFolderEpisodes, x: torch.Tensor) -> int:
    """The gray level (the class) of one image tensor [C, S, S]."""
    return round(float(x.mean()) * 255)


def test_episodes_n_way_k_shot_shuffled_labels_disjoint(grouped, tmp_path):
    dm = make(grouped, tmp_path, test_fraction=0.34, val_fraction=0.34)
    dm.setup("fit")
    assert dm.images.shape[1:] == (1, 8, 8)  # resized to square, grayscale
    first = Counter()
    for task in range(30):
        spec = dm.train_sampler.train_episode(0, 0, task)
        ep = dm.build(spec)
        assert ep.support_x.shape == (3, 1, 8, 8) and ep.query_x.shape == (6, 1, 8, 8)
        assert sorted(ep.support_y.tolist()) == [0, 1, 2]
        assert Counter(ep.query_y.tolist()) == {0: 2, 1: 2, 2: 2}
        assert not set(spec.support) & set(spec.query)
        # every image of a label shows the same class; different labels, different classes
        by_label = {}
        for x, y in zip(torch.cat([ep.support_x, ep.query_x]), torch.cat([ep.support_y, ep.query_y]), strict=False):
            by_label.setdefault(int(y), set()).add(level_of(dm, x))
        assert all(len(v) == 1 for v in by_label.values())
        assert len(set.union(*by_label.values())) == 3
        first[spec.classes[0]] += 1
    assert len(first) > 3  # label 0 is a different class from episode to episode
    parts = dm.plan.groups
    train, val, test = parts.train_groups, parts.val_groups, parts.test_groups
    assert not (set(train) & set(val) or set(train) & set(test) or set(val) & set(test))
    # stratified: every group has classes in every part
    for part in (train, val, test):
        assert {c.split("/")[0] for c in part} == {"north", "south", "east"}
    drawn = {c for s in range(20) for t in range(5)
             for c in dm.train_sampler.train_episode(0, s, t).classes}
    names = {i: c for (_, c), i in dm.train_sampler.class_ids.items()}
    assert {names[i] for i in drawn} <= set(train)
    assert dm.train_sampler.families == ["scripts"]


def test_heldout_group_is_the_meta_test_and_never_trained(grouped, tmp_path):
    dm = make(grouped, tmp_path, heldout=["south"], val_groups=["east"])
    dm.setup("fit")
    assert {c.split("/")[0] for c in dm.plan.groups.test_groups} == {"south"}
    assert {c.split("/")[0] for c in dm.plan.groups.val_groups} == {"east"}
    assert {c.split("/")[0] for c in dm.plan.groups.train_groups} == {"north"}
    plan = dm.preflight()
    assert plan.groups == ("east", "north", "south")
    assert not set(plan.train_groups) & set(plan.test_groups)
    assert set(plan.test_groups) == {f"south/class{c:02d}" for c in range(5)}


def test_deterministic_and_decoded_once(grouped, tmp_path):
    a = make(grouped, tmp_path, test_fraction=0.34, val_fraction=0.34, seed=3)
    a.setup("fit")
    b = make(grouped, tmp_path, test_fraction=0.34, val_fraction=0.34, seed=3)
    b.setup("fit")
    assert a.decoded_now and not b.decoded_now and np.array_equal(a.images, b.images)
    keys = [(s, t) for s in range(5) for t in range(5)]
    assert ([a.train_sampler.train_episode(3, s, t) for s, t in keys]
            == [b.train_sampler.train_episode(3, s, t) for s, t in keys])
    other = make(grouped, tmp_path, test_fraction=0.34, val_fraction=0.34, seed=4)
    other.setup("fit")
    assert other.test_specs == a.test_specs and other.val_specs == a.val_specs


def test_flat_layout_rgb_and_no_inversion(tmp_path):
    root = write_folder(tmp_path / "flat", classes=10)
    dm = make(root, tmp_path, channels=3, image_size=6, test_fraction=0.3, val_fraction=0.3)
    dm.setup("fit")
    assert dm.images.shape == (60, 3, 6, 6)
    assert len(dm.plan.groups.test_groups) == 3 and len(dm.plan.groups.val_groups) == 3
    inverted = make(root, tmp_path, invert=True, test_fraction=0.3, val_fraction=0.3)
    inverted.setup("fit")
    plain = make(root, tmp_path, test_fraction=0.3, val_fraction=0.3)
    plain.setup("fit")
    assert np.array_equal(inverted.images, 255 - plain.images)


def test_small_class_warned_and_left_out_of_training(grouped, tmp_path, caplog):
    for p in sorted((grouped / "north" / "class00").iterdir())[2:]:
        p.unlink()  # 2 images: fewer than K + L = 3
    dm = make(grouped, tmp_path, heldout=["south"], val_groups=["east"])
    with caplog.at_level(logging.WARNING, logger="metalearn.data.image_folder"):
        dm.setup("fit")
    assert "meta-train classes with fewer than K + L = 3 images: north/class00 (2)" in caplog.text
    assert "north/class00" not in dm.train_sampler.pools["scripts"]
    with pytest.raises(ValueError, match=r"data.heldout's meta-test classes .* north/class00 \(2\)"):
        make(grouped, tmp_path, heldout=["north"], val_groups=["east"]).preflight()


# ---- bad input: clear messages before any training -----------------------------------------------
def test_a_non_image_file_in_a_class_folder_is_named(grouped, tmp_path):
    (grouped / "north" / "class01" / "notes.txt").write_text("not a picture")
    (grouped / "north" / "class01" / ".DS_Store").write_bytes(b"\0")  # dotfiles are skipped
    with pytest.raises(ValueError, match=r"class01/notes.txt is not an image \(suffix '.txt'\)"):
        make(grouped, tmp_path).preflight()


def test_an_unreadable_image_is_named_before_training(grouped, tmp_path):
    bad = grouped / "east" / "class02" / "3.png"
    bad.write_bytes(b"\x89PNG but not really")
    dm = make(grouped, tmp_path)
    dm.preflight()  # the listing is fine; the bytes are read when decoding
    with pytest.raises(ValueError, match=r"east/class02/3.png: cannot read this image"):
        dm.prepare_data()


def test_unknown_heldout_group_and_groups_without_group_folders(grouped, tmp_path):
    with pytest.raises(ValueError, match=r"data.heldout names \['west'\], not groups .*"
                                         r"east, north, south"):
        make(grouped, tmp_path, heldout=["west"]).preflight()
    flat = write_folder(tmp_path / "flat", classes=9)
    with pytest.raises(ValueError, match=r"data.heldout names groups, but .* no group folders"):
        make(flat, tmp_path, heldout=["x"]).preflight()


def test_mixed_layouts_and_stray_files_are_named(tmp_path):
    root = write_folder(tmp_path / "mixed", groups={"g": 4})
    write_folder(root, classes=1)  # root/class00/*.png beside the group g/
    with pytest.raises(ValueError, match="mixes layouts"):
        make(root, tmp_path).preflight()
    flat = write_folder(tmp_path / "flat", classes=9)
    (flat / "readme.md").write_text("hello")
    with pytest.raises(ValueError, match=r"readme.md is a file at the top of the image folder"):
        make(flat, tmp_path).preflight()


def test_too_few_classes_for_ways(grouped, tmp_path):
    with pytest.raises(ValueError, match=r"data.ways=6 but the meta-val split has \d classes"):
        make(grouped, tmp_path, ways=6).preflight()
    with pytest.raises(ValueError, match="data.channels must be 1"):
        make(grouped, tmp_path, channels=2)


# ---- through the real entry point --------------------------------------------------------------
def test_experiment_composes_with_conv4_following_the_data(tmp_path):
    cfg = compose_config(["experiment=reptile_image_folder", "data.channels=3",
                          "data.image_size=32", "data.ways=4"], tmp_path)
    model = build(cfg.model)
    assert model.top.blocks[0][0].in_channels == 3 and model.top.head.out_features == 4
    omni = compose_config(["experiment=reptile_omniglot"], tmp_path)
    assert omni.model.in_channels == 1


@pytest.mark.slow
def test_run_py_debug_fast_on_a_written_folder_and_on_omniglot_extracted(tmp_path):
    """A folder of tiny PNGs, then Omniglot's images_background_small1.zip extracted as it
    comes (<alphabet>/<character>/<png>): both train and meta-test through run.py."""
    root = write_folder(tmp_path / "tiny", groups={"a": 10, "b": 10}, images=5, size=16)
    for out in ("one", "two"):
        (tmp_path / out).mkdir()
    run_py(tmp_path / "one", "experiment=reptile_image_folder", "debug=fast", "registry=off",
           f"data.path={root}", "data.image_size=16", "data.ways=3", f"paths.cache_dir={tmp_path}/cache")
    (version,) = (tmp_path / "one").glob("tensorboard/reptile_image_folder/*")
    tags = set(scalars(version).Tags()["scalars"])
    assert {"test/tiny/acc", "test/acc", "val/acc", "train/query_acc"} <= tags

    with zipfile.ZipFile(OMNIGLOT_ZIP) as z:
        z.extractall(tmp_path / "omniglot")
    folder = tmp_path / "omniglot" / "images_background_small1"
    proc = run_py(tmp_path / "two", "experiment=protonet_image_folder", "debug=fast",
                  "registry=off", f"data.path={folder}", "data.heldout=[Korean]",
                  f"paths.cache_dir={tmp_path}/cache")
    assert "meta-test images_background_small1" in proc.stdout + proc.stderr
    (version,) = (tmp_path / "two").glob("tensorboard/protonet_image_folder/*")
    assert "test/images_background_small1/acc" in set(scalars(version).Tags()["scalars"])
