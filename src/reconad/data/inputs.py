"""Turn what a user hands the Detector (arrays, tensors, paths, datasets) into datasets."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from reconad.data.records import ImageItem
from reconad.errors import DataError
from reconad.imaging import expand_paths, to_unit_range


def _as_numpy(images: np.ndarray | torch.Tensor) -> np.ndarray:
    """The array behind ``images``; bfloat16 tensors (which numpy lacks) as float32, losslessly."""
    if not torch.is_tensor(images):
        return np.asarray(images)
    t = images.detach().cpu()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


class ArrayImageDataset(Dataset):
    """Images from an array or tensor: (N,H,W), (N,H,W,C) or (N,C,H,W).

    Pixel values are brought to [0, 1] by a fixed scale per dtype
    (``reconad.imaging.to_unit_range``: uint8 / 255, uint16 / 65535, bool 0/1, floats as
    they are), never by a statistic of the batch, so an image scores the same whatever
    it is scored with; out-of-range, NaN or infinite values are a ``DataError`` naming
    the image (``array[i]``).
    """

    def __init__(
        self, images: np.ndarray | torch.Tensor, image_size: int | None, labels: Sequence[int] | None = None
    ) -> None:
        arr = _as_numpy(images)
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4:
            raise DataError(f"expected images shaped (N,H,W), (N,H,W,C) or (N,C,H,W), got {tuple(arr.shape)}")
        if arr.shape[1] not in (1, 3) and arr.shape[-1] in (1, 3, 4):
            arr = arr.transpose(0, 3, 1, 2)
        if arr.shape[1] == 4:
            arr = arr[:, :3]
        if arr.shape[1] not in (1, 3):
            raise DataError(f"images must have 1 or 3 channels, got shape {tuple(arr.shape)}")
        names = [f"array[{i}]" for i in range(arr.shape[0])]
        self.images = torch.from_numpy(to_unit_range(np.ascontiguousarray(arr), "image array", names))
        self.image_size = None if image_size is None else int(image_size)
        self.labels = list(labels) if labels is not None else [0] * len(self.images)
        if len(self.labels) != len(self.images):
            raise DataError(f"{len(self.labels)} labels for {len(self.images)} images")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, i: int) -> ImageItem:
        img = self.images[i]
        if img.shape[0] == 1:
            img = img.expand(3, -1, -1)
        if self.image_size is not None and img.shape[-2:] != (self.image_size, self.image_size):
            img = F.interpolate(
                img.unsqueeze(0),
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            ).squeeze(0)
        return ImageItem(image=img.clamp(0, 1).contiguous(), label=int(self.labels[i]), path=f"array[{i}]")


def path_dataset(paths: Sequence[str | os.PathLike], image_size: int | None, resize_mode: str = "resize") -> Dataset:
    """Images read from a list of file paths (label 0, no masks)."""
    from reconad.data.base import ImageListDataset, SampleRecord

    return ImageListDataset([SampleRecord(Path(p), 0) for p in paths], image_size, resize_mode)


def _stack_list(items: Sequence[Any]) -> np.ndarray | torch.Tensor:
    """A list of images (PIL images, arrays or tensors of one size) as one batch; DataError
    (one line) for an empty list, another kind of item, or images of different sizes."""
    if not items:
        raise DataError("nothing given: the list is empty")
    arrays: list[Any] = []
    for i, item in enumerate(items):
        if hasattr(item, "getbands") and hasattr(item, "size"):  # a PIL image: its pixels, 8 or 16 bit
            item = np.asarray(item.convert("RGB") if item.mode not in ("L", "RGB", "I;16") else item)
        if not isinstance(item, (np.ndarray, torch.Tensor)):
            raise DataError(
                f"cannot use a list holding {type(item).__name__} (item {i}) as image data: give image arrays, "
                "PIL images or file paths"
            )
        arrays.append(item)
    shapes = [tuple(a.shape) for a in arrays]
    other = next((i for i, shape in enumerate(shapes) if shape != shapes[0]), None)
    if other is not None:
        raise DataError(
            f"the listed images have different shapes ({'x'.join(map(str, shapes[0]))} at [0], "
            f"{'x'.join(map(str, shapes[other]))} at [{other}]): resize them to one size first, or give "
            "them as file paths or a folder (each is then resized to image_size)"
        )
    if all(isinstance(a, torch.Tensor) for a in arrays):
        return torch.stack(arrays)
    return np.stack([a.numpy() if isinstance(a, torch.Tensor) else a for a in arrays])


def as_image_dataset(data: Any, image_size: int | None, resize_mode: str = "resize") -> Dataset:
    """Accept a Dataset of ImageItem, an array/tensor batch, a folder, a list of paths, or a
    list of images of one size (PIL images, arrays, tensors)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return ArrayImageDataset(data, image_size)
    if isinstance(data, (str, os.PathLike)):
        return path_dataset(expand_paths([data]), image_size, resize_mode)
    if isinstance(data, Sequence) and data and all(isinstance(d, (str, os.PathLike)) for d in data):
        return path_dataset(expand_paths(list(data)), image_size, resize_mode)
    if isinstance(data, (list, tuple)):
        return ArrayImageDataset(_stack_list(data), image_size)
    raise DataError(
        f"cannot use {type(data).__name__} as image data: pass a Dataset, an image array/tensor, "
        "a folder or a list of image paths"
    )
