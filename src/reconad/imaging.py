"""Image files without torch: finding them, decoding them, and the geometry of fitting them.

This module imports only numpy and Pillow, so that ``reconad predict`` with ONNX Runtime
can start without loading PyTorch (``reconad.quick_predict``).  ``reconad.data.image_io``
builds the tensor loaders of the datasets on the same decoding (``read_array``) and the
same geometry (``fit_plan``); ``load_array`` here is its numpy twin, and a test holds the
two to the same pixels (antialiased bilinear resampling, as
``torch.nn.functional.interpolate(..., antialias=True)`` computes it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from reconad.errors import ConfigError, DataError

__all__ = [
    "IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "FitPlan",
    "expand_paths",
    "fit_plan",
    "is_image_file",
    "list_images",
    "load_array",
    "read_array",
    "target_hw",
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


def expand_paths(items: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; folders replaced by the images they hold (sorted)."""
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            out.extend(list_images(p))
        elif p.exists():
            out.append(p)
        else:
            raise DataError(f"no such file or folder: {p}")
    if not out:
        raise DataError("no images found in: " + ", ".join(str(i) for i in items))
    return out


def target_hw(image_size: Size) -> tuple[int, int]:
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


def check_mode(resize_mode: str) -> None:
    if resize_mode not in RESIZE_MODES:
        raise ConfigError(f"unknown resize_mode {resize_mode!r}; choose one of {', '.join(RESIZE_MODES)}")


@dataclass(frozen=True)
class FitPlan:
    """How an (h, w) image reaches its target: crop (top, left, height, width), resize to
    ``resize_hw``, then pad (left, right, top, bottom) by reflection (edge where too wide)."""

    crop: tuple[int, int, int, int]
    resize_hw: tuple[int, int]
    pad: tuple[int, int, int, int]

    @property
    def reflect(self) -> bool:
        """Reflection is possible only where each pad is narrower than the resized image."""
        h, w = self.resize_hw
        return max(self.pad[0], self.pad[1]) < w and max(self.pad[2], self.pad[3]) < h


def fit_plan(h: int, w: int, image_size: Size, resize_mode: str = "resize") -> FitPlan:
    """The geometry of ``resize_mode`` (see ``reconad.data.image_io``) for an (h, w) image."""
    check_mode(resize_mode)
    th, tw = target_hw(image_size)
    whole = (0, 0, h, w)
    if resize_mode == "resize":
        return FitPlan(whole, (th, tw), (0, 0, 0, 0))
    if resize_mode == "crop":  # the largest centred window with the target aspect ratio
        ch, cw = (h, round(h * tw / th)) if w * th >= h * tw else (round(w * th / tw), w)
        ch, cw = max(1, min(ch, h)), max(1, min(cw, w))
        return FitPlan(((h - ch) // 2, (w - cw) // 2, ch, cw), (th, tw), (0, 0, 0, 0))
    scale = min(th / h, tw / w)  # pad: scale to fit inside the target, then pad the rest
    sh, sw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    ph, pw = th - sh, tw - sw
    top, left = ph // 2, pw // 2
    return FitPlan(whole, (sh, sw), (left, pw - left, top, ph - top))


def read_array(path: PathLike, fp: BinaryIO | None = None) -> np.ndarray:
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


def _taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(source index, weight), each (n_out, K): antialiased bilinear resampling n_in -> n_out.

    A triangle filter centred on each output pixel's centre in input coordinates, widened
    by the scale when shrinking (so every input pixel contributes), weights normalised.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    lo = np.clip(np.floor(centres - support + 0.5).astype(np.int64), 0, None)
    hi = np.minimum(np.floor(centres + support + 0.5).astype(np.int64), n_in)
    k = int((hi - lo).max())
    idx = lo[:, None] + np.arange(k)[None, :]
    w = np.clip(1.0 - np.abs((idx + 0.5 - centres[:, None]) / support), 0.0, None)
    w[idx >= hi[:, None]] = 0.0
    w /= w.sum(axis=1, keepdims=True)
    return np.minimum(idx, n_in - 1), w


def resize_array(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Antialiased bilinear resize of an (H, W, C) float array (rows, then columns)."""
    out = arr
    if out.shape[0] != hw[0]:
        i, w = _taps(out.shape[0], hw[0])
        out = np.einsum("ok,okwc->owc", w, out[i])
    if out.shape[1] != hw[1]:
        i, w = _taps(out.shape[1], hw[1])
        out = np.einsum("ok,hokc->hoc", w, out[:, i])
    return out


def load_array(path: PathLike, image_size: Size | None, resize_mode: str = "resize") -> np.ndarray:
    """``reconad.data.image_io.load_image`` in numpy: (3, H, W) float32 in [0, 1]."""
    check_mode(resize_mode)
    arr = read_array(path)
    if image_size is not None:
        plan = fit_plan(arr.shape[0], arr.shape[1], image_size, resize_mode)
        top, left, ch, cw = plan.crop
        arr = resize_array(arr[top : top + ch, left : left + cw], plan.resize_hw)
        lp, rp, tp, bp = plan.pad
        if lp or rp or tp or bp:
            arr = np.pad(arr, ((tp, bp), (lp, rp), (0, 0)), mode="reflect" if plan.reflect else "edge")
        arr = np.clip(arr, 0.0, 1.0)
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
    return np.repeat(chw, 3, axis=0) if chw.shape[0] == 1 else chw
