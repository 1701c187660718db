"""Shared machinery: a dataset defined by a list of (image, label, mask) records."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from reconad.data.image_io import IMAGE_EXTENSIONS, RESIZE_MODES, Size, load_image, load_mask
from reconad.data.records import ImageItem
from reconad.data.sizes import dataset_size
from reconad.errors import ConfigError, DataError

__all__ = [
    "SampleRecord",
    "ImageListDataset",
    "split_holdout",
    "find_mask",
    "expected_mask",
    "warn_missing_masks",
    "dataset_paths",
    "check_disjoint",
]

#: mask file names tried for an image ``<stem>.<ext>``: ``<stem>_mask.<ext>``, then ``<stem>.<ext>``
MASK_SUFFIXES: tuple[str, ...] = ("_mask", "")


@dataclass(frozen=True)
class SampleRecord:
    """One sample on disk. ``mask_path`` None with ``label`` 1 means "mask missing"."""

    path: Path
    label: int
    defect: str = "good"
    mask_path: Path | None = None


class ImageListDataset(Dataset[ImageItem]):
    """A map-style dataset over ``SampleRecord`` s; images are decoded on access.

    ``has_masks`` says whether the dataset carries pixel ground truth: when it does,
    every item has a (1, H, W) mask (zeros for normal images and for anomalous images
    whose mask file is missing); when it does not, ``item.mask`` is None.
    With ``cache=True`` decoded items are kept in memory after their first access.
    """

    def __init__(
        self,
        records: list[SampleRecord],
        image_size: Size | None = 256,
        resize_mode: str = "resize",
        has_masks: bool = False,
        cache: bool = False,
    ) -> None:
        if resize_mode not in RESIZE_MODES:
            raise ConfigError(f"unknown resize_mode {resize_mode!r}; choose one of {', '.join(RESIZE_MODES)}")
        self.records = list(records)
        self.image_size = image_size
        self.resize_mode = resize_mode
        self._has_masks = bool(has_masks)
        self._cache: dict[int, ImageItem] | None = {} if cache else None
        self._masks_read: set[int] = set()  # a mask's warnings (e.g. read as empty) come once, not per pass

    @property
    def has_masks(self) -> bool:
        """True when items carry pixel ground-truth masks."""
        return self._has_masks

    @property
    def labels(self) -> list[int]:
        """Image labels (0 normal, 1 anomalous) without decoding any image."""
        return [r.label for r in self.records]

    @property
    def paths(self) -> list[str]:
        return [str(r.path) for r in self.records]

    @property
    def defects(self) -> list[str]:
        return [r.defect for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> ImageItem:
        if index < 0:
            index += len(self.records)
        if not 0 <= index < len(self.records):
            raise IndexError(index)
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        rec = self.records[index]
        image = load_image(rec.path, self.image_size, self.resize_mode)
        mask: torch.Tensor | None = None
        if self._has_masks:
            if rec.label == 1 and rec.mask_path is not None:
                check_mask_size(rec.path, rec.mask_path)
                mask = load_mask(
                    rec.mask_path, self.image_size, self.resize_mode, warn_empty=index not in self._masks_read
                )
                self._masks_read.add(index)
            else:
                mask = torch.zeros(1, *image.shape[-2:])
        item = ImageItem(image=image, label=int(rec.label), mask=mask, path=str(rec.path), defect=rec.defect)
        if self._cache is not None:
            self._cache[index] = item
        return item

    def __repr__(self) -> str:
        n_bad = sum(self.labels)
        return (
            f"{type(self).__name__}(n={len(self)}, normal={len(self) - n_bad}, "
            f"anomalous={n_bad}, image_size={self.image_size}, resize_mode={self.resize_mode!r})"
        )


def check_mask_size(image: Path, mask: Path) -> None:
    """DataError naming the mask when its pixel size differs from its image's (it would be stretched)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(image) as a, Image.open(mask) as b:
            ia, mb = a.size, b.size
    except (OSError, UnidentifiedImageError):
        return  # unreadable files are reported by the loaders with their own message
    if ia != mb:
        raise DataError(f"mask {mask} is {mb[0]}x{mb[1]} pixels but its image {image} is {ia[0]}x{ia[1]}")


def find_mask(folder: Path, stem: str, suffixes: tuple[str, ...] = MASK_SUFFIXES) -> Path | None:
    """The first existing ``<folder>/<stem><suffix><ext>`` over suffixes and image extensions."""
    if not folder.is_dir():
        return None
    for suffix in suffixes:
        for ext in IMAGE_EXTENSIONS:
            for cand in (folder / f"{stem}{suffix}{ext}", folder / f"{stem}{suffix}{ext.upper()}"):
                if cand.is_file():
                    return cand
    return None


def expected_mask(folder: Path, stem: str, suffixes: tuple[str, ...] = MASK_SUFFIXES) -> Path:
    """The mask path ``find_mask`` tries first: what a warning about a missing mask names."""
    return folder / f"{stem}{suffixes[0]}.png"


def warn_missing_masks(missing: Sequence[tuple[Path, Path]]) -> None:
    """One warning for all anomalous images whose mask file could not be found.

    ``missing`` holds (image, expected mask path) pairs; the warning names both, so the
    fix (put the mask there, or rename it) is plain without reading any code.
    """
    if missing:
        shown = "; ".join(f"{mask} for {image}" for image, mask in missing[:3]) + ("; ..." if len(missing) > 3 else "")
        warnings.warn(
            f"{len(missing)} anomalous image(s) have no mask file, so their masks are all zero "
            f"(no defect pixel): expected {shown}",
            stacklevel=3,
        )


def split_holdout(dataset: Dataset, fraction: float = 0.1, seed: int = 0) -> tuple[Subset, Subset]:
    """Split ``dataset`` into (train, val) ``Subset`` s with a seeded permutation.

    ``round(fraction * n)`` items (at least 1) go to val; both index lists are sorted so
    the subsets keep the dataset's order.  Same seed, same split.
    """
    if not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"holdout fraction must be in (0, 1), got {fraction!r}")
    n = dataset_size(dataset)
    if n < 2:
        raise DataError(f"cannot hold out a validation part of a dataset with {n} item(s)")
    n_val = min(n - 1, max(1, int(np.floor(fraction * n + 0.5))))
    perm = np.random.default_rng(seed).permutation(n)
    val_idx = sorted(int(i) for i in perm[:n_val])
    train_idx = sorted(int(i) for i in perm[n_val:])
    return Subset(dataset, train_idx), Subset(dataset, val_idx)


def dataset_paths(dataset: Dataset) -> list[str] | None:
    """The items' file paths without decoding any image, where the dataset knows them; else None."""
    from torch.utils.data import ConcatDataset

    from reconad.data.labels import LabelledDataset

    if isinstance(dataset, LabelledDataset):
        return dataset_paths(dataset.dataset)
    if isinstance(dataset, ConcatDataset):
        parts = [dataset_paths(d) for d in dataset.datasets]
        present = [p for p in parts if p is not None]
        return [p for part in present for p in part] if len(present) == len(parts) else None
    if isinstance(dataset, Subset):
        inner = dataset_paths(dataset.dataset)
        return None if inner is None else [inner[int(i)] for i in dataset.indices]
    paths = getattr(dataset, "paths", None)
    return [str(p) for p in paths] if isinstance(paths, (list, tuple)) else None


def check_disjoint(train: Dataset | None, test: Dataset | None) -> None:
    """DataError when the test split holds a file that training also read (compared by
    resolved path): metrics on images the model was fitted to would be optimistic."""
    a = dataset_paths(train) if train is not None else None
    b = dataset_paths(test) if test is not None else None
    if not a or not b:
        return
    seen = {os.path.realpath(p) for p in a}
    shared = [p for p in b if os.path.realpath(p) in seen]
    if shared:
        shown = ", ".join(shared[:3]) + (", ..." if len(shared) > 3 else "")
        raise DataError(
            f"the test split shares {len(shared)} image(s) with the training data, so its metrics would be "
            f"optimistic: {shown}"
        )
