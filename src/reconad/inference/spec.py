"""What a pipeline's input is: image size, resize mode, colour and pixel scale.

The reading itself is ``reconad.data.image_io.load_image`` (PyTorch) and
``reconad.imaging.load_array`` (numpy, the torch-free path; held to the same pixels by
a test); this spec only says which size and mode they are called with.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["InputSpec", "PIXEL_SCALE"]

#: the divisor that brings pixels of each integer type to [0, 1] (reconad.imaging.to_unit_range)
PIXEL_SCALE = {"uint8": 255.0, "uint16": 65535.0, "bool": 1.0, "float": 1.0}


@dataclass(frozen=True)
class InputSpec:
    """Images as the model sees them: RGB (grayscale replicated, alpha dropped), float32 in
    [0, 1], resized to ``image_size`` with ``resize_mode`` (or read at their own size when
    the pipeline scores by tiles)."""

    image_size: int
    resize_mode: str = "resize"
    tiled: bool = False

    @property
    def decode_size(self) -> int | None:
        """The size images are read at: ``image_size``, or their own (None) under tiling."""
        return None if self.tiled else self.image_size

    def load(self, path: str | Path) -> Any:
        """(3, H, W) float32 tensor of the image at ``path`` (DataError naming it when unreadable)."""
        from reconad.data.image_io import load_image

        return load_image(path, self.decode_size, self.resize_mode)

    def load_array(self, path: str | Path) -> np.ndarray:
        """The same pixels as ``load`` as a numpy array, without PyTorch."""
        from reconad.imaging import load_array

        return load_array(path, self.decode_size, self.resize_mode)

    def describe(self) -> dict[str, Any]:
        """The pre-processing in words and numbers (the export's JSON records it)."""
        return {
            "dtype": "float32",
            "layout": "NCHW",
            "color": "RGB (grayscale replicated to 3 channels, alpha dropped)",
            "value_range": [0.0, 1.0],
            "scale": "pixel / 255 (8-bit), pixel / 65535 (16-bit)",
            "pixel_scale": dict(PIXEL_SCALE),
            "image_size": self.image_size,
            "resize_mode": self.resize_mode,
            "resize": "bilinear, antialiased (torch.nn.functional.interpolate(..., antialias=True)); "
            "see reconad.data.image_io",
        }
