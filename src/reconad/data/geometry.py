"""Input geometry chosen from the training images alone (``Detector(geometry="auto")``).

Squashing every image to a square is the literature's habit, and it costs on parts far
from square: a long tile squashed to 256 x 256 is stretched across and shrunk along, and
its small copies are up-scaled (BENCHMARKS.md, the default detector).  The choice here
reads only the sizes of the training images, never a label or a test result:

* **Tiling** when even the small images (10th percentile of the short side) are at
  least ``TILE_FACTOR`` times the input size: resizing them would shrink a small defect
  below what the encoder resolves (BENCHMARKS.md §14.2: 2048 px images with 6-12 px
  defects, resized 0.50 image AUROC, tiled 0.97).
* **Aspect kept** (``letterbox``: scaled to fit, zero borders) when the median aspect
  ratio (long side / short side) is at least ``ASPECT_LIMIT``; otherwise ``resize``
  (the distortion of squashing is small).
* **Size**: the side the images are brought to is at most the ``image_size`` asked for
  and at most the 10th percentile of the side that is scaled to it (the long side when
  the aspect is kept, the short side when squashing), rounded down to a multiple of
  ``STEP``: nine images in ten are shrunk or kept, none of those is up-scaled; but
  never below ``MIN_SIDE`` (64), where a stride-32 encoder's deepest level is 2 x 2.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from reconad.errors import ConfigError

__all__ = [
    "GEOMETRIES",
    "Geometry",
    "apply_geometry",
    "check_geometry",
    "choose_geometry",
    "dataset_paths",
    "fixed",
    "image_sizes",
]

log = logging.getLogger("reconad")

GEOMETRIES = (None, "auto")
#: median long/short ratio from which the aspect is kept instead of squashed
ASPECT_LIMIT = 1.25
#: tiles when the small images are at least this many input sizes across
TILE_FACTOR = 4
#: the share of small images the size is read from (the 10th percentile)
QUANTILE = 0.1
#: sizes are multiples of the encoders' largest stride
STEP = 32
#: the smallest side chosen: below it the deepest levels of a stride-32 encoder have
#: one or two cells (the one-class benchmarks read 28 px digits at 64 px for this reason)
MIN_SIDE = 64
#: at most this many files' headers are read (evenly spaced over the list)
MAX_FILES = 2000


@dataclass(frozen=True)
class Geometry:
    """The geometry chosen, and the training-image statistics it was chosen from."""

    image_size: int
    resize_mode: str
    tile_size: int | None
    n_images: int
    median_aspect: float
    long_side_q10: int
    short_side_q10: int
    reason: str

    def settings(self) -> dict[str, Any]:
        """The detector settings this geometry sets."""
        return {"image_size": self.image_size, "resize_mode": self.resize_mode, "tile_size": self.tile_size}

    def to_dict(self) -> dict[str, Any]:
        return {"mode": "auto", **asdict(self)}


def check_geometry(value: Any) -> None:
    if value not in GEOMETRIES:
        raise ConfigError(f"unknown geometry {value!r}; choose None (image_size and resize_mode as given) or 'auto'")


def _round_down(side: float, floor: int) -> int:
    return max(floor, int(side // STEP) * STEP)


def choose_geometry(sizes: Sequence[tuple[int, int]], max_side: int = 256, min_side: int = 32) -> Geometry:
    """The geometry for training images of ``sizes`` ((height, width) each).

    ``max_side``: the largest input side wanted (the detector's ``image_size``);
    ``min_side``: the smallest the model accepts.
    """
    if not sizes:
        raise ConfigError("geometry='auto' needs at least one training image size")
    hw = np.asarray(sizes, dtype=np.float64).reshape(-1, 2)
    long_side, short_side = hw.max(axis=1), hw.min(axis=1)
    aspect = float(np.median(long_side / np.maximum(short_side, 1.0)))
    long_q = int(np.quantile(long_side, QUANTILE))
    short_q = int(np.quantile(short_side, QUANTILE))
    floor = min(max_side, max(MIN_SIDE, int(math.ceil(min_side / STEP)) * STEP))
    stats: dict[str, Any] = {
        "n_images": len(hw),
        "median_aspect": round(aspect, 4),
        "long_side_q10": long_q,
        "short_side_q10": short_q,
    }
    if short_q >= TILE_FACTOR * max_side:
        reason = (
            f"images at least {short_q} px across ({TILE_FACTOR}x the input size or more): tiles at native resolution"
        )
        return Geometry(max_side, "resize", max_side, reason=reason, **stats)
    if aspect >= ASPECT_LIMIT:
        side = min(max_side, _round_down(long_q, floor))
        reason = (
            f"median aspect {aspect:.2f} >= {ASPECT_LIMIT}: aspect kept, long side {side} (10th percentile {long_q})"
        )
        return Geometry(side, "letterbox", None, reason=reason, **stats)
    side = min(max_side, _round_down(short_q, floor))
    reason = f"median aspect {aspect:.2f} < {ASPECT_LIMIT}: squashed to {side} (short side 10th percentile {short_q})"
    return Geometry(side, "resize", None, reason=reason, **stats)


def _file_sizes(paths: Sequence[str | os.PathLike[str]]) -> list[tuple[int, int]]:
    from PIL import Image, UnidentifiedImageError

    step = max(1, len(paths) // MAX_FILES)
    out = []
    for p in list(paths)[::step]:
        try:
            with Image.open(p) as im:  # reads the header only
                out.append((int(im.height), int(im.width)))
        except (OSError, UnidentifiedImageError):
            continue  # the loader names unreadable files when it reads them
    return out


def image_sizes(data: Any) -> list[tuple[int, int]] | None:
    """(height, width) of images given as files (a folder, paths, or a dataset that lists
    its files as ``paths``); None when the data carry no file sizes (arrays, tensors)."""
    from reconad.imaging import expand_paths

    if isinstance(data, (str, os.PathLike)):
        return _file_sizes(expand_paths([data]))
    if isinstance(data, Sequence) and data and all(isinstance(d, (str, os.PathLike)) for d in data):
        return _file_sizes(expand_paths(list(data)))
    paths = dataset_paths(data)
    return _file_sizes(paths) if paths else None


def dataset_paths(data: Any) -> list[str | os.PathLike[str]] | None:
    """The image files a dataset reads: its ``paths``, its ``records``' paths (the datasets
    of ``reconad.data``), or those of every part of a ``ConcatDataset``; None otherwise."""
    paths = getattr(data, "paths", None)
    if isinstance(paths, Sequence) and paths and all(isinstance(p, (str, os.PathLike)) for p in paths):
        return list(paths)
    records = getattr(data, "records", None)
    if isinstance(records, Sequence) and records and all(hasattr(r, "path") for r in records):
        return [r.path for r in records]
    parts = getattr(data, "datasets", None)
    if isinstance(parts, Sequence) and parts:
        found = [dataset_paths(part) for part in parts]
        if all(found):
            return [p for part in found for p in part or []]
    return None


def fixed(settings: dict[str, Any]) -> dict[str, Any]:
    """The geometry ``settings`` hold once chosen, as options that keep it (for the fold
    models of cross-fitted calibration, which train on a part of the same data)."""
    if settings.get("geometry") != "auto":
        return {}
    return {"geometry": None, **{k: settings[k] for k in ("image_size", "resize_mode", "tile_size")}}


def _is_files(data: Any) -> bool:
    if isinstance(data, (str, os.PathLike)):
        return True
    return isinstance(data, Sequence) and bool(data) and all(isinstance(d, (str, os.PathLike)) for d in data)


def apply_geometry(settings: dict[str, Any], data: Any, min_side: int = 32) -> dict[str, Any] | None:
    """With ``settings["geometry"] == "auto"``: choose the geometry from the sizes of the
    image files ``data`` names (a folder or paths), write it into ``settings`` and return
    its record (None otherwise).  Arrays and datasets arrive already read at a size: the
    settings stay as given, and the record and a warning say so."""
    if settings.get("geometry") != "auto":
        return None
    sizes = image_sizes(data) if _is_files(data) else None
    if not sizes:
        log.warning(
            "geometry='auto' chooses from image files (a folder or paths); these data are not "
            "files: image_size=%s and resize_mode=%s as given",
            settings["image_size"],
            settings["resize_mode"],
        )
        return {"mode": "auto", "reason": "not image files: image_size and resize_mode as given"}
    choice = choose_geometry(sizes, int(settings["image_size"]), min_side)
    settings.update(choice.settings())
    log.info("geometry='auto': %s", choice.reason)
    return choice.to_dict()
