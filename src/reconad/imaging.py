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
    "to_unit_range",
]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
RESIZE_MODES: tuple[str, ...] = ("resize", "pad", "crop", "letterbox")
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
    wrong = f"image_size must be an int or (height, width), got {image_size!r}"
    if isinstance(image_size, bool):
        raise ConfigError(wrong)
    if isinstance(image_size, (int, np.integer)):
        h = w = int(image_size)
    else:
        try:
            h, w = (int(v) for v in image_size)
        except (TypeError, ValueError):
            raise ConfigError(wrong) from None
    if h < 1 or w < 1:
        raise ConfigError(f"image_size must be positive, got {image_size!r}")
    return h, w


def check_mode(resize_mode: str) -> None:
    if resize_mode not in RESIZE_MODES:
        raise ConfigError(f"unknown resize_mode {resize_mode!r}; choose one of {', '.join(RESIZE_MODES)}")


@dataclass(frozen=True)
class FitPlan:
    """How an (h, w) image reaches its target: crop (top, left, height, width), resize to
    ``resize_hw``, then pad (left, right, top, bottom) by reflection (edge where too wide),
    or with zeros when ``constant`` (``letterbox``)."""

    crop: tuple[int, int, int, int]
    resize_hw: tuple[int, int]
    pad: tuple[int, int, int, int]
    constant: bool = False

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
    scale = min(th / h, tw / w)  # pad / letterbox: scale to fit inside the target, then pad the rest
    sh, sw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    ph, pw = th - sh, tw - sw
    top, left = ph // 2, pw // 2
    return FitPlan(whole, (sh, sw), (left, pw - left, top, ph - top), constant=resize_mode == "letterbox")


#: rounding noise tolerated (and clipped) at the edges of the float range [0, 1]
FLOAT_TOLERANCE = 1e-6


def _scale(dtype: np.dtype, where: str) -> float:
    """The fixed divisor that brings pixels of ``dtype`` to [0, 1] (see ``to_unit_range``)."""
    if dtype.kind == "b":
        return 1.0
    if dtype.kind == "u" and dtype.itemsize in (1, 2):
        return 255.0 if dtype.itemsize == 1 else 65535.0
    if dtype.kind == "f":
        return 1.0
    raise DataError(
        f"{where}: {dtype} pixel values have no fixed scale (8- or 16-bit?): pass uint8 (0-255), "
        "uint16 (0-65535), bool or floats in [0, 1]"
    )


def _first_bad(ok: np.ndarray, names: Sequence[str] | None) -> int | None:
    """The index (axis 0) of the first image where ``ok`` is False; None without ``names``."""
    if names is None:
        return None
    return int(np.flatnonzero(~ok.reshape(len(names), -1).all(axis=1))[0])


def to_unit_range(values: np.ndarray, where: str = "image", names: Sequence[str] | None = None) -> np.ndarray:
    """Pixel values as float32 in [0, 1], by a fixed scale per dtype, never by the data.

    The accepted ranges: bool (False/True -> 0/1), uint8 (0-255, divided by 255),
    uint16 (0-65535, divided by 65535), floats (float16/32/64: already in [0, 1], within
    ``FLOAT_TOLERANCE`` of rounding, which is clipped).  Other integer dtypes (int8..int64,
    uint32/64) are refused: their values could be on either the 8- or the 16-bit scale,
    and guessing from the data (e.g. the batch's maximum) would make one image's score
    depend on the other images it is scored with.  NaN, infinite and out-of-range
    floats are refused too, never clipped: a score of a repaired image is not the score
    of the image given.  Errors are one ``DataError`` line naming ``where``, or with
    ``names`` (one per entry of axis 0, e.g. ``array[3]``) the first bad image.
    """
    arr = np.asarray(values)
    scale = _scale(arr.dtype, where)
    if arr.dtype.kind != "f":
        out = arr.astype(np.float32)
        out /= np.float32(scale)
        return out
    for ok, problem in ((np.isfinite, "NaN or infinite"), (_in_unit_range, "out-of-range")):
        good = ok(arr)
        if not good.all():
            i = _first_bad(good, names)
            img = arr if i is None else arr[i]
            name = where if i is None or names is None else names[i]
            raise DataError(f"{name}: {_describe_bad(img, problem)}")
    return np.clip(arr, 0.0, 1.0).astype(np.float32, copy=False)


def _in_unit_range(arr: np.ndarray) -> np.ndarray:
    return (arr >= -FLOAT_TOLERANCE) & (arr <= 1.0 + FLOAT_TOLERANCE)


def _describe_bad(img: np.ndarray, problem: str) -> str:
    """What is wrong with the float pixels of one image, in words."""
    if problem != "out-of-range":
        return f"{int((~np.isfinite(img)).sum())} pixel value(s) are NaN or infinite"
    return (
        f"float pixel values must lie in [0, 1], found {float(img.min()):.4g} to {float(img.max()):.4g} "
        "(divide 8-bit values by 255, 16-bit ones by 65535, or pass them as uint8 / uint16)"
    )


def _decoded(im: Image.Image, path: Path) -> np.ndarray:
    """The pixels of an opened image in the dtype that fixes their scale (see ``to_unit_range``)."""
    mode = im.mode
    if mode.startswith("I"):  # 16-bit grayscale (PNG/TIFF; some decode as 32-bit "I"): the 16-bit scale
        arr = np.asarray(im)
        if arr.dtype != np.uint16 and arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DataError(
                f"{path}: integer pixel values must lie in 0-65535 (read on the 16-bit scale), "
                f"found {int(arr.min())} to {int(arr.max())}"
            )
        return arr.astype(np.uint16)
    if mode == "F":  # 32-bit float (TIFF): must already lie in [0, 1]
        return np.asarray(im, dtype=np.float32)
    if mode in ("L", "1", "LA", "La"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))  # RGB, RGBA, P, CMYK, YCbCr, ...: drop alpha, expand palettes


#: PNG colour types the fast decoder takes at 8 bits, and the pyspng format each is read as
#: (grey, RGB, grey + alpha, RGBA; pyspng reads grey + alpha only as RGB, whose first
#: channel is the grey); palettes and 16-bit files go through Pillow
_FAST_PNG = {0: "L", 2: "RGB", 4: "RGB", 6: "RGB"}
_GREY_ALPHA = 4
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fast_png(data: bytes) -> np.ndarray | None:
    """The pixels of an 8-bit grey or RGB(A) PNG through pyspng (libspng: about twice as fast
    as Pillow on 256 px files, BENCHMARKS §15.8), the same values Pillow gives (alpha
    dropped); None where Pillow should decode it: pyspng missing, another kind of PNG, an
    image over Pillow's size limit, or a file pyspng cannot read (Pillow then names the fault)."""
    if len(data) < 33 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR" or data[24] != 8:
        return None
    fmt = _FAST_PNG.get(data[25])
    pixels = int.from_bytes(data[16:20], "big") * int.from_bytes(data[20:24], "big")
    if fmt is None or (Image.MAX_IMAGE_PIXELS is not None and pixels > Image.MAX_IMAGE_PIXELS):
        return None
    try:
        import pyspng
    except ImportError:  # the optional ``fast`` extra
        return None
    try:
        arr = pyspng.load(data, format=fmt)
    except Exception:  # pyspng raises bare RuntimeErrors on broken files: Pillow decodes it again and names the fault
        return None
    return arr[..., 0] if data[25] == _GREY_ALPHA else arr


def _read_raw(path: Path, fp: BinaryIO | None) -> np.ndarray:
    """The decoded pixels of ``path`` (or of ``fp``) in the dtype that fixes their scale."""
    if fp is None and path.suffix.lower() == ".png":
        fast = _fast_png(path.read_bytes())
        if fast is not None:
            return fast
    with Image.open(path if fp is None else fp) as im:
        im.load()
        return _decoded(im, path)


def _raw_pixels(path: Path, fp: BinaryIO | None = None) -> np.ndarray:
    """The decoded pixels (H, W, C) of ``path`` (or of ``fp``) in the dtype that fixes their
    scale; a ``DataError`` naming the file for anything unreadable."""
    try:
        raw = _read_raw(path, fp)
    except FileNotFoundError:
        raise DataError(f"cannot read image: {path}: file not found") from None
    except DataError:  # a ValueError too: already names the file
        raise
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"cannot read image: {path}: {exc}") from None
    if raw.ndim == 2:
        raw = raw[:, :, None]
    if raw.ndim != 3 or raw.shape[0] == 0 or raw.shape[1] == 0:
        raise DataError(f"cannot read image: {path}: unexpected shape {raw.shape}")
    return raw


def read_array(path: PathLike, fp: BinaryIO | None = None) -> np.ndarray:
    """Decode a file (or the open binary stream ``fp``, named ``path``) to float32 (H, W, C)
    in [0, 1] with C in {1, 3}.

    8-bit files are divided by 255, 16-bit ones (and 32-bit integer ones, whose values must
    lie in 0-65535) by 65535; float files must hold finite values in [0, 1]
    (``to_unit_range``): anything else is a ``DataError`` naming the file, never clipped.
    """
    path = Path(path)
    return to_unit_range(_raw_pixels(path, fp), str(path))


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
    path = Path(path)
    raw = _raw_pixels(path)
    plan = None if image_size is None else fit_plan(raw.shape[0], raw.shape[1], image_size, resize_mode)
    if plan is None or _leaves_as_is(plan, raw.shape[0], raw.shape[1]):
        # channels first while the pixels are still 8 or 16 bits: a quarter of the bytes to move
        chw = to_unit_range(np.ascontiguousarray(raw.transpose(2, 0, 1)), str(path))
    else:
        chw = np.ascontiguousarray(_fitted(to_unit_range(raw, str(path)), plan).transpose(2, 0, 1), dtype=np.float32)
    return np.repeat(chw, 3, axis=0) if chw.shape[0] == 1 else chw


def _leaves_as_is(plan: FitPlan, h: int, w: int) -> bool:
    return plan.crop == (0, 0, h, w) and tuple(plan.resize_hw) == (h, w) and not any(plan.pad)


def _fitted(arr: np.ndarray, plan: FitPlan) -> np.ndarray:
    """(H, W, C) pixels in [0, 1] cropped, resized and padded as ``plan`` says."""
    top, left, ch, cw = plan.crop
    cropped = arr[top : top + ch, left : left + cw]
    arr = resize_array(cropped, plan.resize_hw)
    if arr is not cropped:  # resampled: rounding may step outside [0, 1]
        arr = np.clip(arr, 0.0, 1.0)
    lp, rp, tp, bp = plan.pad
    if plan.constant:
        return np.pad(arr, ((tp, bp), (lp, rp), (0, 0)), mode="constant")
    if lp or rp or tp or bp:
        return np.pad(arr, ((tp, bp), (lp, rp), (0, 0)), mode="reflect" if plan.reflect else "edge")
    return arr
