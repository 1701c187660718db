"""Plain folders of images: one of normal images, optionally one of anomalous images
and one of masks.

Masks are matched to anomalous images by file stem: for ``scratch_03.jpg`` the files
``<mask_dir>/scratch_03_mask.<ext>`` and then ``<mask_dir>/scratch_03.<ext>`` are tried
(``<ext>`` any image extension).  Without ``mask_dir`` items carry no mask.
"""

from __future__ import annotations

import os
from pathlib import Path

from reconad.data.base import ImageListDataset, SampleRecord, find_mask, warn_missing_masks
from reconad.data.image_io import Size, list_images
from reconad.errors import DataError

__all__ = ["FolderDataset"]


class FolderDataset(ImageListDataset):
    """Normal images (label 0) from ``normal_dir``, anomalous ones (label 1) from
    ``abnormal_dir``; masks from ``mask_dir`` (see the module docstring)."""

    def __init__(
        self,
        normal_dir: str | os.PathLike[str] | None,
        abnormal_dir: str | os.PathLike[str] | None = None,
        mask_dir: str | os.PathLike[str] | None = None,
        image_size: Size | None = 256,
        resize_mode: str = "resize",
        cache: bool = False,
        defect_name: str = "defect",
    ) -> None:
        self.normal_dir = Path(normal_dir) if normal_dir is not None else None
        self.abnormal_dir = Path(abnormal_dir) if abnormal_dir is not None else None
        self.mask_dir = Path(mask_dir) if mask_dir is not None else None
        if self.mask_dir is not None and not self.mask_dir.is_dir():
            raise DataError(f"mask folder not found: {self.mask_dir}")

        records: list[SampleRecord] = []
        if self.normal_dir is not None:
            records += [SampleRecord(p, 0) for p in list_images(self.normal_dir)]
        missing: list[Path] = []
        if self.abnormal_dir is not None:
            for p in list_images(self.abnormal_dir):
                mask = find_mask(self.mask_dir, p.stem) if self.mask_dir is not None else None
                if self.mask_dir is not None and mask is None:
                    missing.append(p)
                records.append(SampleRecord(p, 1, defect_name, mask))
        if not records:
            where = ", ".join(str(d) for d in (self.normal_dir, self.abnormal_dir) if d is not None)
            raise DataError(f"no images found in {where or 'any folder (none given)'}")
        if self.mask_dir is not None:
            warn_missing_masks(missing, self.mask_dir)
        super().__init__(records, image_size, resize_mode, has_masks=self.mask_dir is not None, cache=cache)
