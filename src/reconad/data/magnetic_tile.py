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


def _defect_records(root: Path, free_dir: Path) -> dict[str, list[SampleRecord]]:
    """Every defect image, by class, with its mask (None when the mask file is missing)."""
    by_class: dict[str, list[SampleRecord]] = {}
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and d.name.startswith("MT_") and d != free_dir)
    for cdir in class_dirs:
        defect = cdir.name[3:].lower()
        records = []
        for p in _class_images(cdir):
            mask = p.with_suffix(".png")
            records.append(SampleRecord(p, 1, defect, mask if mask.is_file() else None))
        by_class[defect] = records
    return by_class


def labelled_defects(by_class: dict[str, list[SampleRecord]], fraction: float, seed: int) -> set[Path]:
    """A seeded ``fraction`` of each defect class (rounded half-up, at least one), as paths."""
    if not 0 < fraction < 1:
        raise ConfigError(f"labelled_fraction must be in (0, 1), got {fraction}")
    picked: set[Path] = set()
    for i, (_, records) in enumerate(sorted(by_class.items())):
        n = min(len(records), max(1, _round_half_up(fraction * len(records))))
        order = np.random.default_rng(seed + 1 + i).permutation(len(records))
        picked.update(records[int(j)].path for j in order[:n])
    return picked


class MagneticTileDataset(ImageListDataset):
    """The magnetic-tile dataset with the fixed seeded split described in the module
    docstring.  ``split`` is "train", "val" (normals only) or "test".

    ``labelled_fraction`` (0 = off) moves a seeded share of each defect class (rounded
    half-up, at least one image per class) into ``"train"`` as labelled anomalies (label
    1, with their masks) and out of ``"test"``, for models that learn from a few
    labelled defects; results must say that this split was used.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        split: str = "train",
        image_size: Size | None = 256,
        seed: int = 0,
        resize_mode: str = "resize",
        cache: bool = False,
        labelled_fraction: float = 0.0,
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
        self.labelled_fraction = float(labelled_fraction)
        if not 0 <= self.labelled_fraction < 1:
            raise ConfigError(f"labelled_fraction must be in (0, 1) (0 = off), got {labelled_fraction}")
        parts = magnetic_tile_split(free, seed)
        normals = sorted(parts[split], key=lambda p: p.name) if split == "test" else parts[split]
        if not normals and split == "train":
            raise DataError(f"too few defect-free images for a training set in {free_dir / 'Imgs'}")
        records = [SampleRecord(p, 0) for p in normals]
        if split in ("train", "test") and (split == "test" or self.labelled_fraction > 0):
            by_class = _defect_records(root, free_dir)
            labelled = labelled_defects(by_class, self.labelled_fraction, seed) if self.labelled_fraction else set()
            defects = [r for rs in by_class.values() for r in rs]
            keep = [r for r in defects if (r.path in labelled) == (split == "train")]
            warn_missing_masks([(r.path, r.path.with_suffix(".png")) for r in keep if r.mask_path is None])
            records += keep
        has_masks = split == "test" or self.labelled_fraction > 0
        super().__init__(records, image_size, resize_mode, has_masks=has_masks, cache=cache)
