"""Plain folders of images: one of normal images, optionally one of anomalous images
and one of masks.

Masks are matched to anomalous images by file stem: for ``scratch_03.jpg`` the files
``<mask_dir>/scratch_03_mask.<ext>`` and then ``<mask_dir>/scratch_03.<ext>`` are tried
(``<ext>`` any image extension).  Without ``mask_dir`` items carry no mask.  A mask must
have its image's pixel size (it is never stretched); how its values are read (0/1 and
0/255 masks both work) is in ``reconad.data.image_io.load_mask``.

When one folder of normal images serves both training and testing, ``split_normals``
divides it: ``TEST_SHARE`` (20 %) of the images, rounded half-up and at least one, go to
the test split and the rest to training, chosen by a seeded permutation of the
name-sorted list, so every call gives the same two disjoint parts.  With fewer than
``MIN_NORMAL_TO_SPLIT`` normal images the split is refused: give a separate folder of
normal test images instead.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reconad.data.base import ImageListDataset, SampleRecord, expected_mask, find_mask, warn_missing_masks
from reconad.data.image_io import Size, list_images
from reconad.errors import ConfigError, DataError

__all__ = ["FolderDataset", "split_normals", "TEST_SHARE", "MIN_NORMAL_TO_SPLIT"]

#: share of a folder's normal images that goes to the test split when no separate folder is given
TEST_SHARE = 0.2
#: fewer normal images than this cannot be split into training and test parts
MIN_NORMAL_TO_SPLIT = 5


def split_normals(folder: str | os.PathLike[str], share: float = TEST_SHARE, seed: int = 0) -> dict[str, list[Path]]:
    """The "train" and "test" parts (name-sorted, disjoint) of the normal images in ``folder``.

    Deterministic (see the module docstring): the test split never holds an image that
    training saw, and ``reconad test`` finds the same part that ``reconad train`` left out.
    """
    if not 0.0 < float(share) < 1.0:
        raise ConfigError(f"test_share must be in (0, 1), got {share!r}")
    images = list_images(folder)
    n = len(images)
    n_test = max(1, int(math.floor(share * n + 0.5)))
    if n < MIN_NORMAL_TO_SPLIT or n_test >= n:
        raise DataError(
            f"only {n} normal image(s) in {folder}: at least {MIN_NORMAL_TO_SPLIT} are needed to set "
            f"{share:.0%} of them aside for testing; add normal images or give a separate folder of normal "
            "test images (good_test/ beside good/, or normal_test_dir)"
        )
    order = np.random.default_rng(seed).permutation(n)
    test = {int(i) for i in order[:n_test]}
    return {
        "train": [p for i, p in enumerate(images) if i not in test],
        "test": [p for i, p in enumerate(images) if i in test],
    }


class FolderDataset(ImageListDataset):
    """Normal images (label 0) from ``normal_dir``, anomalous ones (label 1) from
    ``abnormal_dir``; masks from ``mask_dir`` (see the module docstring).

    ``normal_files``: the normal images to read instead of every image in ``normal_dir``
    (one part of ``split_normals``).
    """

    def __init__(
        self,
        normal_dir: str | os.PathLike[str] | None,
        abnormal_dir: str | os.PathLike[str] | None = None,
        mask_dir: str | os.PathLike[str] | None = None,
        image_size: Size | None = 256,
        resize_mode: str = "resize",
        cache: bool = False,
        defect_name: str = "defect",
        normal_files: Sequence[str | os.PathLike[str]] | None = None,
    ) -> None:
        self.normal_dir = Path(normal_dir) if normal_dir is not None else None
        self.abnormal_dir = Path(abnormal_dir) if abnormal_dir is not None else None
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        if self.mask_dir is not None and not self.mask_dir.is_dir():
            raise DataError(f"mask folder not found: {self.mask_dir}")

        records: list[SampleRecord] = []
        if normal_files is not None:
            records += [SampleRecord(Path(p), 0) for p in normal_files]
        elif self.normal_dir is not None:
            records += [SampleRecord(p, 0) for p in list_images(self.normal_dir)]
        missing: list[tuple[Path, Path]] = []
        if self.abnormal_dir is not None:
            for p in list_images(self.abnormal_dir):
                mask = find_mask(self.mask_dir, p.stem) if self.mask_dir is not None else None
                if self.mask_dir is not None and mask is None:
                    missing.append((p, expected_mask(self.mask_dir, p.stem)))
                records.append(SampleRecord(p, 1, defect_name, mask))
        if not records:
            where = ", ".join(str(d) for d in (self.normal_dir, self.abnormal_dir) if d is not None)
            raise DataError(f"no images found in {where or 'any folder (none given)'}")
        warn_missing_masks(missing)
        super().__init__(records, image_size, resize_mode, has_masks=self.mask_dir is not None, cache=cache)
