"""MVTec AD layout (also used by the generated texture data and many MVTec-style sets).

::

    <root>/<category>/train/good/*.png                  normal training images
    <root>/<category>/test/good/*.png                   normal test images (label 0)
    <root>/<category>/test/<defect>/*.png               anomalous test images (label 1)
    <root>/<category>/ground_truth/<defect>/<name>_mask.png

A mask named ``<name>.png`` (no ``_mask``) or with another image extension is accepted
too.  An anomalous image without a mask gets an all-zero mask and a warning.  When the
category has no ``ground_truth`` folder at all, items carry no mask (``has_masks`` is
False).
"""

from __future__ import annotations

import os
from pathlib import Path

from reconad.data.base import ImageListDataset, SampleRecord, expected_mask, find_mask, warn_missing_masks
from reconad.data.image_io import Size, list_images
from reconad.errors import ConfigError, DataError

__all__ = ["MVTecDataset", "list_categories", "MVTEC_SPLITS"]

MVTEC_SPLITS: tuple[str, ...] = ("train", "test")
NORMAL_NAME = "good"


def list_categories(root: str | os.PathLike[str]) -> list[str]:
    """Sorted names of the sub-folders of ``root`` that hold a ``train`` or ``test`` folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"dataset root not found: {root}")
    return sorted(
        p.name
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and ((p / "train").is_dir() or (p / "test").is_dir())
    )


class MVTecDataset(ImageListDataset):
    """One category of an MVTec-AD-style dataset, ``split`` "train" or "test"."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        category: str,
        split: str = "train",
        image_size: Size | None = 256,
        resize_mode: str = "resize",
        cache: bool = False,
    ) -> None:
        if split not in MVTEC_SPLITS:
            raise ConfigError(
                f"unknown split {split!r} for an MVTec-style dataset; choose one of "
                f"{', '.join(MVTEC_SPLITS)} (use split_holdout() for a validation part)"
            )
        root = Path(root)
        present = list_categories(root)
        cat_dir = root / str(category)
        if category not in present:
            listing = ", ".join(present) if present else "none"
            raise DataError(f"category {category!r} not found: {cat_dir} (categories present: {listing})")
        self.root = root
        self.category = str(category)
        self.split = split
        gt_dir = cat_dir / "ground_truth"
        has_masks = gt_dir.is_dir()

        records: list[SampleRecord] = []
        split_dir = cat_dir / split
        if split == "train":
            records = [SampleRecord(p, 0) for p in list_images(split_dir / NORMAL_NAME)]
            if not records:
                raise DataError(f"no training images in {split_dir / NORMAL_NAME}")
        else:
            if not split_dir.is_dir():
                raise DataError(f"test folder not found: {split_dir}")
            missing: list[tuple[Path, Path]] = []
            defect_dirs = sorted(
                (d for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".")),
                key=lambda d: (d.name != NORMAL_NAME, d.name),
            )
            for ddir in defect_dirs:
                for p in list_images(ddir):
                    if ddir.name == NORMAL_NAME:
                        records.append(SampleRecord(p, 0))
                        continue
                    mask = find_mask(gt_dir / ddir.name, p.stem) if has_masks else None
                    if has_masks and mask is None:
                        missing.append((p, expected_mask(gt_dir / ddir.name, p.stem)))
                    records.append(SampleRecord(p, 1, ddir.name, mask))
            if not records:
                raise DataError(f"no test images in {split_dir}")
            warn_missing_masks(missing)
        super().__init__(records, image_size, resize_mode, has_masks=has_masks, cache=cache)
