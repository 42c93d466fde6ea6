"""A folder of images as classes: `<class>/<image>` or `<group>/<class>/<image>` (the layout of
torchvision's ImageFolder and of the `imagefolder` builder of `datasets`), listed, checked,
decoded once and cached on disk (data/disk_cache.py).

Names starting with a dot (`.DS_Store`, `.ipynb_checkpoints`) are skipped; any other file that
is not an image, or sits where a folder should, is an error naming it, so a stray file never
becomes a class or silently vanishes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Array3D, Dataset, Features, Value
from PIL import Image, UnidentifiedImageError

from metalearn.data.disk_cache import cached_dataset, digest

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm", ".pbm")
MODES = {1: "L", 3: "RGB"}


@dataclass(frozen=True)
class ImageListing:
    """Every image file under a root, in sorted order, with its class key and group."""

    root: Path
    files: tuple[Path, ...]
    classes: tuple[str, ...]  # per file: `class` or `group/class`
    groups: tuple[str, ...]   # per file: the group folder, or "" in the `<class>/` layout
    grouped: bool


def _entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _images_of(folder: Path) -> list[Path]:
    """The images of a class folder; anything else in it is an error naming it."""
    files = _entries(folder)
    for p in files:
        if p.is_dir():
            raise ValueError(f"{p} is a folder inside the class folder {folder}: expected "
                             f"<class>/<image> or <group>/<class>/<image>, no deeper")
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{p} is not an image (suffix {p.suffix or 'none'!r}): a class "
                             f"folder holds only images ({', '.join(IMAGE_SUFFIXES)}); move it out")
    return files


def list_images(root: Path) -> ImageListing:
    """The images under root, by class; the layout is read from the folder itself."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data.path {root} is not a folder of <class>/<image> or "
                                f"<group>/<class>/<image> files")
    tops = _entries(root)
    stray = [p for p in tops if not p.is_dir()]
    if stray:
        raise ValueError(f"{stray[0]} is a file at the top of the image folder {root}: the top "
                         f"holds only class (or group) folders")
    if not tops:
        raise ValueError(f"the image folder {root} holds no class folders")
    # a top folder of folders is a group; one of images is a class
    grouped_tops = {p: any(q.is_dir() for q in _entries(p)) for p in tops}
    grouped = any(grouped_tops.values())
    if grouped and not all(grouped_tops.values()):
        flat = next(p for p, g in grouped_tops.items() if not g)
        deep = next(p for p, g in grouped_tops.items() if g)
        raise ValueError(f"{root} mixes layouts: {deep.name}/ holds folders (a group) but "
                         f"{flat.name}/ does not; use <class>/<image> or <group>/<class>/<image> "
                         f"throughout")
    files, classes, groups = [], [], []
    for top in tops:
        class_dirs = _entries(top) if grouped else [top]
        for folder in class_dirs:
            if not folder.is_dir():
                raise ValueError(f"{folder} is a file in the group folder {top}: a group "
                                 f"holds only class folders")
            images = _images_of(folder)
            if not images:
                log.warning("class folder %s holds no images", folder)
            key = f"{top.name}/{folder.name}" if grouped else folder.name
            files += images
            classes += [key] * len(images)
            groups += [top.name if grouped else ""] * len(images)
    return ImageListing(root, tuple(files), tuple(classes), tuple(groups), grouped)


def decode(path: Path, image_size: int, channels: int, invert: bool) -> np.ndarray:
    """One image as uint8 [C, S, S]: converted to grayscale or RGB, resized (Lanczos)."""
    try:
        with Image.open(path) as img:
            img = img.convert(MODES[channels])
            if img.size != (image_size, image_size):
                img = img.resize((image_size, image_size), Image.LANCZOS)
            x = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: cannot read this image ({type(exc).__name__}: {exc})") from exc
    x = x[None] if channels == 1 else x.transpose(2, 0, 1)  # [C, S, S]
    return 255 - x if invert else x


def cached_images(listing: ImageListing, image_size: int, channels: int, invert: bool,
                  cache_dir: Path) -> tuple[Dataset, bool]:
    """The decoded images (column `image`, uint8 [C, S, S], in listing order), from the cache
    or decoded now; and whether they were decoded now."""
    relative = [str(p.relative_to(listing.root)) for p in listing.files]
    key = digest(list(listing.files), image_size, channels, invert, relative)
    target = Path(cache_dir) / f"image_folder-{listing.root.name}-{image_size}px-{key}"

    def build() -> Dataset:
        log.info("decoding %d images of %s (%d px, %d channel(s)) once; cache: %s",
                 len(listing.files), listing.root, image_size, channels, target)
        images = [decode(p, image_size, channels, invert) for p in listing.files]
        features = Features({"image": Array3D((channels, image_size, image_size), "uint8"),
                             "file": Value("string")})
        return Dataset.from_dict({"image": images, "file": relative}, features=features)

    return cached_dataset(target, build)
