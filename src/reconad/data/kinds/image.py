"""Images (arrays, tensors, folders, path lists, datasets of ``ImageItem``): the convolutional variants."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from reconad.data.inputs import as_image_dataset
from reconad.data.kinds.base import DataKind
from reconad.data.labels import LabelledDataset


class ImageKind(DataKind):
    """Images brought to ``image_size`` squares (None: read at their own size, for tiles)."""

    name: ClassVar[str] = "image"
    tileable: ClassVar[bool] = True

    def __init__(self, image_size: int | None, resize_mode: str = "resize") -> None:
        self.image_size = image_size
        self.resize_mode = resize_mode

    def dataset(self, data: Any, labels: np.ndarray | None = None) -> Dataset:
        ds = as_image_dataset(data, self.image_size, self.resize_mode)
        return ds if labels is None else LabelledDataset(ds, labels)

    def input_shape(self, item: Any) -> list[int]:
        return list(item.image.shape)
