"""Magnetic-tile surface defects (Huang, Qiu & Yuan, "Surface defect saliency of
magnetic tile", The Visual Computer, 2020; dataset published 2018), in its published
layout::

    <root>/MT_<Class>/Imgs/<name>.jpg     image (grayscale, sizes vary)
    <root>/MT_<Class>/Imgs/<name>.png     its mask, same name, same folder

Classes: Blowhole, Break, Crack, Fray, Uneven (defects, label 1, ``defect`` = class
name in lower case) and Free (defect-free, label 0).  Any other ``MT_<Class>`` folder is
read as one more defect class.  Masks are not strictly binary and are thresholded at
128; a defect image whose mask is empty (some Uneven ones) keeps label 1.

There is no official split; this one is fixed and seeded.  The Free images, sorted by
file name, are shuffled with ``numpy.random.default_rng(seed)``; the first 80 % of the
shuffled list (rounded half-up) form the normal pool, of which the first 90 % (rounded
half-up) is ``"train"`` and the rest ``"val"`` (held-out normals for early stopping or
threshold choice); ``"test"`` is the remaining 20 % of Free plus every defect image.

Counts on the published data (952 Free; Blowhole 115, Break 85, Crack 57, Fray 32,
Uneven 103 = 392 defect images), seed 0:

* train: 686 Free
* val:    76 Free
* test:  190 Free + 392 defect = 582 images

(the counts do not depend on the seed, only which Free images land where does).
Four Uneven masks are empty in the published files and a fifth (exp3_num_24829, one
pixel) vanishes when resized to 256 px; those images keep label 1 with an empty mask.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from reconad.data.base import ImageListDataset, SampleRecord, warn_missing_masks
from reconad.data.image_io import Size
from reconad.errors import ConfigError, DataError

__all__ = ["MagneticTileDataset", "MAGNETIC_TILE_CLASSES", "MAGNETIC_TILE_SPLITS", "magnetic_tile_split"]

MAGNETIC_TILE_CLASSES: tuple[str, ...] = ("Blowhole", "Break", "Crack", "Fray", "Uneven", "Free")
MAGNETIC_TILE_SPLITS: tuple[str, ...] = ("train", "val", "test")
NORMAL_CLASS = "Free"
POOL_FRACTION = 0.8
TRAIN_FRACTION_OF_POOL = 0.9
_IMAGE_SUFFIXES = (".jpg", ".jpeg")


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _class_images(class_dir: Path) -> list[Path]:
    imgs = class_dir / "Imgs"
    if not imgs.is_dir():
        return []
    found = (p for p in imgs.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
    return sorted((p for p in found if not p.name.startswith(".")), key=lambda p: p.name)


def magnetic_tile_split(free: list[Path], seed: int = 0) -> dict[str, list[Path]]:
    """Split the (name-sorted) Free images into train / val / test-normal lists."""
    free = sorted(free, key=lambda p: p.name)
    order = np.random.default_rng(seed).permutation(len(free))
    shuffled = [free[int(i)] for i in order]
    n_pool = _round_half_up(POOL_FRACTION * len(free))
    n_train = _round_half_up(TRAIN_FRACTION_OF_POOL * n_pool)
    return {
        "train": shuffled[:n_train],
        "val": shuffled[n_train:n_pool],
        "test": shuffled[n_pool:],
    }


class MagneticTileDataset(ImageListDataset):
    """The magnetic-tile dataset with the fixed seeded split described in the module
    docstring.  ``split`` is "train", "val" (normals only) or "test"."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        image_size: Size = 256,
        seed: int = 0,
        resize_mode: str = "resize",
        cache: bool = False,
    ) -> None:
        if split not in MAGNETIC_TILE_SPLITS:
            raise ConfigError(
                f"unknown split {split!r} for magnetic-tile; choose one of {', '.join(MAGNETIC_TILE_SPLITS)}"
            )
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"dataset root not found: {root}")
        free_dir = root / f"MT_{NORMAL_CLASS}"
        if not free_dir.is_dir():
            raise DataError(f"not a magnetic-tile folder (no MT_{NORMAL_CLASS} inside): {root}")
        free = _class_images(free_dir)
        if not free:
            raise DataError(f"no images in {free_dir / 'Imgs'}")
        self.root = root
        self.split = split
        self.seed = seed

        parts = magnetic_tile_split(free, seed)
        normals = sorted(parts[split], key=lambda p: p.name) if split == "test" else parts[split]
        if not normals and split == "train":
            raise DataError(f"too few defect-free images for a training set in {free_dir / 'Imgs'}")
        records = [SampleRecord(p, 0) for p in normals]
        if split == "test":
            missing: list[Path] = []
            class_dirs = sorted(
                d for d in root.iterdir() if d.is_dir() and d.name.startswith("MT_") and d.name != free_dir.name
            )
            for cdir in class_dirs:
                defect = cdir.name[3:].lower()
                for p in _class_images(cdir):
                    mask: Path | None = p.with_suffix(".png")
                    if not mask.is_file():  # type: ignore[union-attr]
                        missing.append(p)
                        mask = None
                    records.append(SampleRecord(p, 1, defect, mask))
            warn_missing_masks(missing, root)
        super().__init__(records, image_size, resize_mode, has_masks=True, cache=cache)
