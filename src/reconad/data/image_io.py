"""Reading images and masks from disk into the tensors that datasets yield.

Every image becomes a float32 tensor in [0, 1] of shape (3, H, W): grayscale (8- or
16-bit) is replicated to three channels, palette images are expanded, and an alpha
channel is dropped (the colour values are kept as stored, not composited).  Masks become
(1, H, W) float tensors of {0, 1}: 0/1 masks and 0/255 (or 0/65535) masks both work, see
``load_mask`` for how other values are read.

Geometry (``resize_mode``), shared by images and masks so that they stay aligned:

* ``"resize"`` (the default): squash the whole image to the target size, ignoring the
  aspect ratio.  This is what the MVTec AD literature does.
* ``"pad"``: scale so the whole image fits the target, keeping the aspect ratio, then
  pad the short side by reflection (edge replication where the pad is wider than the
  image) so that no artificial border appears.
* ``"letterbox"``: as ``"pad"``, but the border is zeros (black; no defect in a mask),
  so no image content is mirrored into it: a defect near the edge is not repeated.
* ``"crop"``: center-crop to the target aspect ratio, then resize.  The cropped-away
  border is lost.

Resizing is bilinear with antialiasing (so strong downscaling does not alias).
"""

from __future__ import annotations

import os
import warnings
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
    if plan.constant:
        return F.pad(x[None], plan.pad, mode="constant", value=0.0)[0]
    return F.pad(x[None], plan.pad, mode="reflect" if plan.reflect else "replicate")[0]


def load_image(
    path: PathLike, image_size: Size | None, resize_mode: str = "resize", fp: BinaryIO | None = None
) -> torch.Tensor:
    """Read an image as a (3, H, W) float32 tensor in [0, 1] at ``image_size``.

    ``image_size`` is an int (square), ``(height, width)`` or None (the file's own size); ``resize_mode`` is
    ``"resize"`` (default), ``"pad"``, ``"letterbox"`` or ``"crop"`` (see the module docstring).
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
    path: PathLike,
    image_size: Size | None,
    resize_mode: str = "resize",
    threshold: int = 128,
    warn_empty: bool = True,
) -> torch.Tensor:
    """Read a mask as a (1, H, W) float tensor of {0, 1}.

    How stored values are read (any bit depth; colour masks: the maximum over channels):

    * a 0/1 mask (the label-image convention: no value above 1 on the 0..255 scale, so
      0/1 stored at 8 or 16 bits) marks every non-zero pixel as defect;
    * any other mask (0/255, 0/65535, anti-aliased grey edges) marks as defect the pixels
      whose value is >= ``threshold`` on the 0..255 scale, i.e. half the full scale of the
      bit depth by default: grey below that is background;
    * a mask with non-zero pixels of which none reaches the threshold (e.g. a label image
      with small values other than 1) is read as empty, with a warning naming it
      (``warn_empty=False``: without, for a caller that has said so once already).

    The mask is brought to ``image_size`` with the same geometry as the image and only
    then thresholded, so defects stay aligned with the image (``threshold`` also applies
    to the resampled 0/1 masks, which are scaled to 0/255 first).
    """
    check_mode(resize_mode)
    arr = read_array(path).max(axis=2, keepdims=True) * 255.0
    top = float(arr.max())
    if 0.0 < top <= 1.0 + 1e-3:  # a 0/1 mask (8- or 16-bit): its 1 pixels are the defect
        arr = (arr > 0.0).astype(np.float32) * 255.0
    elif warn_empty and 0.0 < top < float(threshold) - 1e-3:
        warnings.warn(
            f"mask {path} has non-zero pixels, but none reaches {threshold} of 255 (largest {top:.0f}) "
            "and it is not a 0/1 mask: it is read as empty",
            stacklevel=2,
        )
    m = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if image_size is not None:
        m = fit_to_size(m, image_size, resize_mode)
    # A tiny tolerance so a flat value of exactly ``threshold`` survives float rounding.
    return (m >= float(threshold) - 1e-3).float()
