"""Omniglot zips read without extracting into Hugging Face datasets, cached on disk.

Images are resized to `image_size` (Lanczos, 105 -> 28 by default) and inverted so that ink is
255 and the background 0 (ink = 1.0 once scaled). The two background zips share Greek and
Latin (byte-identical files); each image is kept once, keyed by its path below the zip's top
folder. `all_runs.zip` holds Lake et al.'s 20 one-shot 20-way runs.
"""
from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from datasets import Array2D, Dataset, Features, Value
from PIL import Image

from metalearn.data.disk_cache import cached_dataset, digest
from metalearn.data.fetch import fetch_hint

log = logging.getLogger(__name__)
BACKGROUND_ZIPS = ("images_background_small1.zip", "images_background_small2.zip")
LAKE_ZIP = "all_runs.zip"


def require(path: Path) -> Path:
    """`path`, or a FileNotFoundError that names it."""
    if not path.is_file():
        raise FileNotFoundError(
            f"Omniglot file {path} not found: point data.path at the folder holding "
            f"{', '.join(BACKGROUND_ZIPS)} (and {LAKE_ZIP} for test_set=lake_runs); "
            f"{fetch_hint('omniglot')}")
    return path


def to_ink(png: bytes, image_size: int) -> np.ndarray:
    """One PNG as a uint8 [S, S] array, ink 255 and background 0."""
    img = Image.open(io.BytesIO(png)).convert("L")
    if img.size != (image_size, image_size):
        img = img.resize((image_size, image_size), Image.LANCZOS)
    return 255 - np.asarray(img, dtype=np.uint8)


def features(image_size: int, **columns: str) -> Features:
    """The image column plus named scalar columns."""
    return Features({"image": Array2D((image_size, image_size), "uint8"),
                     **{k: Value(v) for k, v in columns.items()}})


def read_background(paths: list[Path], image_size: int = 28) -> Dataset:
    """Every character image of the background zips, once: image, alphabet, character,
    drawer, label (class id: the character's rank among the sorted (alphabet, character))."""
    found: dict[tuple[str, str, str], np.ndarray] = {}
    for path in paths:
        with zipfile.ZipFile(require(path)) as z:
            for name in sorted(z.namelist()):
                if not name.endswith(".png"):
                    continue
                _, alphabet, character, file = name.split("/")
                key = (alphabet, character, file)
                if key not in found:  # Greek and Latin are in both zips
                    found[key] = to_ink(z.read(name), image_size)
    keys = sorted(found)
    chars = sorted({(a, c) for a, c, _ in keys})
    label = {ac: i for i, ac in enumerate(chars)}
    return Dataset.from_dict(
        {"image": [found[k] for k in keys], "alphabet": [k[0] for k in keys],
         "character": [k[1] for k in keys],
         "drawer": [int(k[2][:-4].split("_")[1]) for k in keys],
         "label": [label[k[:2]] for k in keys]},
        features=features(image_size, alphabet="string", character="string", drawer="int32",
                          label="int32"))


def read_lake_runs(path: Path, image_size: int = 28) -> Dataset:
    """The 20 runs of `all_runs.zip`: image, run (1-20), role (support/query), item (the NN of
    classNN / itemNN) and label (0-19: the support class, for queries from class_labels.txt)."""
    rows: list[tuple[int, str, int, int, np.ndarray]] = []
    with zipfile.ZipFile(require(path)) as z:
        names = set(z.namelist())
        runs = sorted({n.split("/")[0] for n in names if n.startswith("run")})
        for run in runs:
            for line in z.read(f"{run}/class_labels.txt").decode().split("\n"):
                if not line.strip():
                    continue
                query, support = line.split()
                item, label = int(query[-6:-4]), int(support[-6:-4]) - 1
                rows.append((int(run[3:]), "query", item, label, z.read(query)))
            for name in sorted(n for n in names if n.startswith(f"{run}/training/")
                               and n.endswith(".png")):
                cls = int(name[-6:-4])
                rows.append((int(run[3:]), "support", cls, cls - 1, z.read(name)))
    rows.sort(key=lambda r: r[:3])
    return Dataset.from_dict(
        {"image": [to_ink(r[4], image_size) for r in rows], "run": [r[0] for r in rows],
         "role": [r[1] for r in rows], "item": [r[2] for r in rows],
         "label": [r[3] for r in rows]},
        features=features(image_size, run="int32", role="string", item="int32",
                          label="int32"))


def cached(name: str, files: list[Path], image_size: int, read: Callable[[], Dataset],
           cache_dir: Path) -> tuple[Dataset, bool]:
    """`read()` saved under `cache_dir`, or the saved copy; and whether it was decoded now."""
    target = cache_dir / f"{name}-{image_size}px-{digest(files, image_size)}"

    def build() -> Dataset:
        data = read()
        log.info("decoded %d %s images (%d px); cache: %s", len(data), name, image_size, target)
        return data

    return cached_dataset(target, build)
