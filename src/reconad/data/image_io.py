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
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from reconad.errors import ConfigError, DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "is_image_file",
    "list_images",
    "load_image",
    "load_mask",
    "fit_to_size",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
RESIZE_MODES: tuple[str, ...] = ("resize", "pad", "crop")

PathLike = str | os.PathLike[str]
Size = int | tuple[int, int]


def is_image_file(path: PathLike) -> bool:
    """True when the file name has one of ``IMAGE_EXTENSIONS`` (any case)."""
    name = Path(path).name
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def list_images(folder: PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (not recursive), sorted by name.

    Hidden files are skipped.  Raises ``DataError`` when ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"image folder not found: {folder}")
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and is_image_file(p)),
        key=lambda p: p.name,
    )


def _target_hw(image_size: Size) -> tuple[int, int]:
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        h = w = int(image_size)
    else:
        try:
            h, w = (int(v) for v in image_size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise ConfigError(f"image_size must be an int or (height, width), got {image_size!r}") from None
    if h < 1 or w < 1:
        raise ConfigError(f"image_size must be positive, got {image_size!r}")
    return h, w


def _check_mode(resize_mode: str) -> None:
    if resize_mode not in RESIZE_MODES:
        raise ConfigError(f"unknown resize_mode {resize_mode!r}; choose one of {', '.join(RESIZE_MODES)}")


def _resize(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased resize of a (C, H, W) float tensor."""
    if tuple(x.shape[-2:]) == hw:
        return x
    out = F.interpolate(x[None], size=hw, mode="bilinear", align_corners=False, antialias=True)
    return out[0]


def _pad_to(x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
    """Pad a (C, H, W) tensor symmetrically to ``hw`` by reflection (edge if too wide)."""
    h, w = x.shape[-2:]
    ph, pw = hw[0] - h, hw[1] - w
    if ph <= 0 and pw <= 0:
        return x
    top, left = max(ph, 0) // 2, max(pw, 0) // 2
    pad = (left, max(pw, 0) - left, top, max(ph, 0) - top)
    reflect_ok = max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h
    return F.pad(x[None], pad, mode="reflect" if reflect_ok else "replicate")[0]


def fit_to_size(x: torch.Tensor, image_size: Size, resize_mode: str = "resize") -> torch.Tensor:
    """Bring a (C, H, W) float tensor to ``image_size`` with the given geometry."""
    _check_mode(resize_mode)
    th, tw = _target_hw(image_size)
    h, w = x.shape[-2:]
    if resize_mode == "resize":
        return _resize(x, (th, tw))
    if resize_mode == "crop":
        # Largest centered window with the target aspect ratio.
        ch, cw = (h, round(h * tw / th)) if w * th >= h * tw else (round(w * th / tw), w)
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        top, left = (h - ch) // 2, (w - cw) // 2
        return _resize(x[:, top : top + ch, left : left + cw], (th, tw))
    # pad: scale to fit inside the target, then pad the remainder.
    scale = min(th / h, tw / w)
    sh, sw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    return _pad_to(_resize(x, (sh, sw)), (th, tw))


def _read_array(path: PathLike, fp: BinaryIO | None = None) -> np.ndarray:
    """Decode a file (or the open binary stream ``fp``, named ``path``) to float32 (H, W, C)
    in [0, 1] with C in {1, 3}."""
    path = Path(path)
    try:
        with Image.open(path if fp is None else fp) as im:
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                # 16-bit grayscale (PNG/TIFF); 32-bit integer images are read on the
                # same 16-bit scale and clipped.
                arr = np.asarray(im, dtype=np.float64) / 65535.0
            elif mode == "F":
                arr = np.asarray(im, dtype=np.float64)
            elif mode in ("L", "1", "LA", "La"):
                arr = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
            else:  # RGB, RGBA, P, CMYK, YCbCr, ...: drop alpha, expand palettes
                arr = np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
    except FileNotFoundError:
        raise DataError(f"cannot read image: {path}: file not found") from None
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image: {path}: {exc}") from None
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"cannot read image: {path}: unexpected shape {arr.shape}")
    return np.clip(arr, 0.0, 1.0).astype(np.float32)


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
    _check_mode(resize_mode)
    arr = _read_array(path, fp)
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
    _check_mode(resize_mode)
    arr = _read_array(path).max(axis=2, keepdims=True) * 255.0
    m = torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
    if image_size is not None:
        m = fit_to_size(m, image_size, resize_mode)
    # A tiny tolerance so a flat value of exactly ``threshold`` survives float rounding.
    return (m >= float(threshold) - 1e-3).float()
