"""The kind of the data the Detector is given, decided once per call: table rows, images or
video clips, each an adapter (``TableKind``, ``ImageKind``, ``ClipKind``) that owns turning
the input into a dataset, its labels, the model check and batching."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from reconad.data.kinds.base import LABELS, DataKind
from reconad.data.kinds.clips import ClipKind
from reconad.data.kinds.image import ImageKind
from reconad.data.kinds.table import TableKind, check_rows_shape
from reconad.data.rows import is_table
from reconad.errors import DataError, DataTypeError

__all__ = ["LABELS", "ClipKind", "DataKind", "ImageKind", "TableKind", "check_rows_shape", "is_sparse", "kind_of"]


def is_sparse(data: Any) -> bool:
    """A SciPy sparse matrix or array (told by its module: importing SciPy here costs time)."""
    return type(data).__module__.startswith("scipy.sparse")


def _is_clips(data: Any) -> bool:
    from reconad.data.video import is_clip_dataset  # reads video only when asked

    return is_clip_dataset(data)


def _is_images(data: Any) -> bool:
    """What ``reconad.data.inputs.as_image_dataset`` takes: a Dataset, an array or tensor, a
    folder or path, or a list/tuple (of paths or of images)."""
    return isinstance(data, (Dataset, np.ndarray, torch.Tensor, str, os.PathLike, list, tuple)) or (
        isinstance(data, Sequence) and not isinstance(data, (bytes, bytearray))
    )


def kind_of(data: Any, image_size: int | None = None, resize_mode: str = "resize") -> DataKind:
    """The adapter for ``data``; ``image_size`` / ``resize_mode`` are what images are read at
    (``image_size`` None: their own size).  Sparse input and anything that is none of the
    kinds is a one-line error."""
    if is_sparse(data):
        raise DataTypeError(
            f"sparse input ({type(data).__name__}) is not supported: pass a dense array (e.g. X.toarray())"
        )
    if is_table(data):
        return TableKind()
    if _is_clips(data):
        return ClipKind()
    if _is_images(data):
        return ImageKind(image_size, resize_mode)
    raise DataError(
        f"cannot use {type(data).__name__} as data: give table rows (a 2-D array, tensor or DataFrame), "
        "images (an array, a folder, image paths or a Dataset) or video clips (a ClipWindows dataset)"
    )
