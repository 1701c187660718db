"""Reading images and masks from disk into the tensors that datasets yield.

Every image becomes a float32 tensor in [0, 1] of shape (3, H, W): grayscale (8- or
16-bit) is replicated to three channels, palette images are expanded, and an alpha
channel is dropped (the colour values are kept as stored, not composited).  Masks become
(1, H, W) float tensors of {0, 1}.

Geometry (``resize_mode``), shared by images and masks so that they stay aligned:

* ``"resize"`` (the default): squash the whole image to the target size, ignoring the
  aspect ratio.  This is what the MVTec AD literature does.
* ``"pad"``: scale so the whole image fits the target, keeping the aspect ratio, then
  pad the short side by reflection (edge replication where the pad is wider than the
  image) so that no artificial border appears.
* ``"crop"``: center-crop to the target aspect ratio, then resize.  The cropped-away
  border is lost.

Resizing is bilinear with antialiasing (so strong downscaling does not alias).
"""

from __future__ import annotations

import os
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F

from reconad.imaging import (
    IMAGE_EXTENSIONS,
    RESIZE_MODES,
    Size,
    check_mode,
    fit_plan,
    is_image_file,
    list_images,
    read_array,
)

__all__ = [
    "IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "is_image_file",
    "list_images",
    "load_image",
    "load_mask",
    "fit_to_size",
]

PathLike = str | os.PathLike[str]


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of a (C, H, W) float tensor."""
    if tuple(x.shape[-2:]) == hw:
        return x
    out = F.interpolate(x[None], size=hw, mode="bilinear", align_corners=False, antialias=True)
    return out[0]


def fit_to_size(x: torch.Tensor, image_size: Size, resize_mode: str = "resize") -> torch.Tensor:
    """Bring a (C, H, W) float tensor to ``image_size`` with the given geometry."""
    plan = fit_plan(int(x.shape[-2]), int(x.shape[-1]), image_size, resize_mode)
    top, left, ch, cw = plan.crop
    x = _resize(x[:, top : top + ch, left : left + cw], plan.resize_hw)
    if not any(plan.pad):
        return x
    return F.pad(x[None], plan.pad, mode="reflect" if plan.reflect else "replicate")[0]


def load_image(
    path: PathLike, image_size: Size | None, resize_mode: str = "resize", fp: BinaryIO | None = None
) -> torch.Tensor:
    """Read an image as a (3, H, W) float32 tensor in [0, 1] at ``image_size``.

    ``image_size`` is an int (square), ``(height, width)`` or None (the file's own size); ``resize_mode`` is
    ``"resize"`` (default), ``"pad"`` or ``"crop"`` (see the module docstring).
    ``fp``: decode this open binary stream instead (``path`` then only names it, e.g. an
    upload), so bytes that never touched the disk get exactly the same pre-processing.
    Raises ``DataError`` naming the path when the file cannot be decoded.
    """
    check_mode(resize_mode)
    arr = read_array(path, fp)
    x = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if image_size is not None:  # None: the image's own size (tiled scoring)
        x = fit_to_size(x, image_size, resize_mode).clamp(0.0, 1.0)
    return x.expand(3, -1, -1).contiguous()  # grayscale: replicate after resizing (cheaper)


def load_mask(
    path: PathLike, image_size: Size | None, resize_mode: str = "resize", threshold: int = 128
) -> torch.Tensor:
    """Read a mask as a (1, H, W) float tensor of {0, 1}.

    The mask is reduced to one channel (colour masks: the maximum over channels), brought
    to ``image_size`` with the same geometry as the image, and only then thresholded:
    a pixel is 1 where its value on the 0..255 scale is >= ``threshold``.
    """
    check_mode(resize_mode)
    arr = read_array(path).max(axis=2, keepdims=True) * 255.0
    m = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if image_size is not None:
        m = fit_to_size(m, image_size, resize_mode)
    # A tiny tolerance so a flat value of exactly ``threshold`` survives float rounding.
    return (m >= float(threshold) - 1e-3).float()
