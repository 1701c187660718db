"""Hyperspectral scenes: MATLAB ``.mat`` (v5 through scipy, v7.3 through h5py) and ENVI files.

A scene is a cube (H, W, bands) with an optional ground-truth map (H, W; nonzero =
anomalous pixel).  Models see its pixels as spectra (rows of ``bands`` numbers) with
their (row, col) positions, so any table model (ae, memae, rx, hadgan) trains on the
scene's own pixels and its scores map back onto the image.

Readers:

* ``.mat``: the cube in ``data`` (also ``hsi``, ``cube``, ``X``) and the map in ``map``
  (also ``gt``, ``groundtruth``, ``mask``); failing those names, the one 3-D and the one
  2-D array in the file.  MATLAB v7.3 files are HDF5: read with h5py when it is installed
  (``pip install 'reconad[hyperspectral]'``), whose arrays come transposed (MATLAB is
  column-major) and are turned back here.
* ENVI: a text header ``NAME.hdr`` (``samples``, ``lines``, ``bands``, ``data type``,
  ``interleave`` bsq/bil/bip, ``byte order``, ``header offset``) beside the raw data file
  (``NAME``, ``NAME.raw``, ``.img``, ``.dat`` or ``.bsq``/``.bil``/``.bip``), read here
  without extra packages.  The map, when there is one, is ``NAME_map.*`` / ``NAME_gt.*``
  beside it (an image file, nonzero = anomalous, or a one-band ENVI pair).

Every reader refuses a cube with NaN or infinite values (naming the bands) and a map whose
shape differs from the cube's spatial shape, naming the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.data.records import SpectrumBatch
from reconad.data.rows import TabularDataset
from reconad.errors import ConfigError, DataError

__all__ = [
    "SCENE_SUFFIXES",
    "Scene",
    "SceneDataset",
    "list_scenes",
    "load_scene",
    "planted_scene",
    "read_envi",
    "write_envi",
]

PathLike = str | os.PathLike[str]
SCENE_SUFFIXES: tuple[str, ...] = (".mat", ".hdr")
CUBE_KEYS: tuple[str, ...] = ("data", "hsi", "cube", "X")
MAP_KEYS: tuple[str, ...] = ("map", "gt", "groundtruth", "mask")
#: ENVI ``data type`` codes -> numpy dtypes
ENVI_TYPES: dict[int, str] = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4", 14: "i8", 15: "u8"}
_RAW_SUFFIXES = ("", ".raw", ".img", ".dat", ".bsq", ".bil", ".bip")


@dataclass
class Scene:
    """A cube (H, W, bands) float32 and its ground-truth map (H, W) bool, or None."""

    name: str
    path: str
    cube: np.ndarray
    gt: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.cube.shape[0]), int(self.cube.shape[1])

    @property
    def bands(self) -> int:
        return int(self.cube.shape[2])

    def spectra(self) -> np.ndarray:
        """Pixels as rows (H*W, bands), row-major, scaled to [0, 1] over the whole cube."""
        flat = self.cube.reshape(-1, self.bands).astype(np.float32)
        lo, hi = float(flat.min()), float(flat.max())
        return (flat - lo) / (hi - lo) if hi > lo else flat - lo

    def positions(self) -> np.ndarray:
        """(row, col) of each spectrum, (H*W, 2)."""
        h, w = self.shape
        rr, cc = np.divmod(np.arange(h * w), w)
        return np.stack([rr, cc], axis=1)

    def batch(self) -> SpectrumBatch:
        """The whole scene as one batch of spectra with their positions."""
        return SpectrumBatch(
            x=torch.from_numpy(self.spectra()),
            position=torch.from_numpy(self.positions()),
            scene_shape=self.shape,
        )

    def dataset(self) -> SceneDataset:
        return SceneDataset(self)

    def to_map(self, scores: np.ndarray) -> np.ndarray:
        """Per-pixel scores (H*W,) back onto the image (H, W)."""
        return np.asarray(scores, dtype=np.float64).reshape(self.shape)


class SceneDataset(TabularDataset):
    """A scene's pixels as table rows (``RowItem``; no labels: the per-scene protocol is unsupervised)."""

    def __init__(self, scene: Scene) -> None:
        super().__init__(scene.spectra())
        self.scene = scene


# --------------------------------------------------------------------------- checks


def _check_cube(cube: Any, path: Path) -> np.ndarray:
    arr = np.asarray(cube)
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise DataError(f"{path}: the cube must be H x W x bands, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: the cube holds non-numeric values ({arr.dtype})")
    arr = arr.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=(0, 1)))
    if bad.size:
        shown = ", ".join(str(int(b) + 1) for b in bad[:8]) + (", ..." if bad.size > 8 else "")
        raise DataError(f"{path}: {bad.size} band(s) hold NaN or infinite values (1-based: {shown})")
    return arr


def _check_map(gt: Any, cube: np.ndarray, path: Path) -> np.ndarray:
    m = np.asarray(gt)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.shape != cube.shape[:2]:
        raise DataError(
            f"{path}: the map is {'x'.join(map(str, m.shape))} but the cube is {cube.shape[0]}x{cube.shape[1]} pixels"
        )
    return m != 0


# --------------------------------------------------------------------------- .mat


def _pick(arrays: dict[str, Any], keys: tuple[str, ...], ndim: int) -> tuple[str, Any] | None:
    for k in keys:
        if k in arrays:
            return k, arrays[k]
    found = [(k, v) for k, v in arrays.items() if np.ndim(v) == ndim]
    return found[0] if len(found) == 1 else None


def _read_mat_v73(path: Path) -> dict[str, Any]:
    try:
        import h5py
    except ImportError:
        raise ConfigError(
            f"{path} is a MATLAB v7.3 (HDF5) file: reading it needs h5py (pip install 'reconad[hyperspectral]')"
        ) from None
    out = {}
    with h5py.File(path, "r") as f:
        for k, v in f.items():
            if isinstance(v, h5py.Dataset) and v.ndim in (2, 3):
                out[k] = np.asarray(v).T  # MATLAB stores column-major: h5py sees the axes reversed
    return out


def _is_hdf5(path: Path) -> bool:
    """HDF5 signature at offset 0 or 512 (MATLAB v7.3 files keep a 512-byte header before it)."""
    with open(path, "rb") as fh:
        head = fh.read(520)
    return head[:8] == b"\x89HDF\r\n\x1a\n" or head[512:520] == b"\x89HDF\r\n\x1a\n"


def _read_mat(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        if _is_hdf5(path):
            arrays = _read_mat_v73(path)
        else:
            arrays = {k: v for k, v in loadmat(str(path)).items() if not k.startswith("__")}
    except NotImplementedError:  # scipy: "Please use HDF reader for matlab v7.3 files"
        arrays = _read_mat_v73(path)
    except DataError:  # a ValueError too: already one line naming the file
        raise
    except (ValueError, OSError, TypeError, IndexError, KeyError, MatReadError) as exc:  # scipy on a foreign file
        raise DataError(f"{path}: not a readable MATLAB file ({type(exc).__name__}: {exc})") from None
    cube = _pick(arrays, CUBE_KEYS, 3)
    if cube is None:
        raise DataError(f"{path}: no cube found (a 3-D variable named {', '.join(CUBE_KEYS)})")
    gt = _pick({k: v for k, v in arrays.items() if k != cube[0]}, MAP_KEYS, 2)
    return cube[1], (None if gt is None else gt[1])


# --------------------------------------------------------------------------- ENVI


def _parse_header(path: Path) -> dict[str, str]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the ENVI header ({exc})") from None
    if not text.lstrip().upper().startswith("ENVI"):
        raise DataError(f"{path}: not an ENVI header (it must start with 'ENVI')")
    fields = {}
    for m in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, flags=re.M):
        fields[m.group(1).strip().lower()] = m.group(2).strip().strip("{}").strip()
    return fields


def _header_int(fields: dict[str, str], key: str, path: Path, default: int | None = None) -> int:
    if key not in fields:
        if default is None:
            raise DataError(f"{path}: the ENVI header has no '{key}'")
        return default
    try:
        return int(fields[key])
    except ValueError:
        raise DataError(f"{path}: '{key} = {fields[key]}' is not a whole number") from None


def _raw_file(header: Path) -> Path:
    stem = header.with_suffix("")
    for suffix in _RAW_SUFFIXES:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file() and candidate != header:
            return candidate
    raise DataError(f"{header}: no data file beside it ({', '.join(stem.name + s for s in _RAW_SUFFIXES)})")


def read_envi(header: PathLike) -> np.ndarray:
    """The cube (lines, samples, bands) of an ENVI header + raw data pair."""
    header = Path(header)
    f = _parse_header(header)
    lines, samples, bands = (_header_int(f, k, header) for k in ("lines", "samples", "bands"))
    code = _header_int(f, "data type", header)
    if code not in ENVI_TYPES:
        raise DataError(f"{header}: ENVI data type {code} is not supported ({sorted(ENVI_TYPES)})")
    order = ">" if _header_int(f, "byte order", header, 0) == 1 else "<"
    dtype = np.dtype(order + ENVI_TYPES[code])
    raw = _raw_file(header)
    offset = _header_int(f, "header offset", header, 0)
    count = lines * samples * bands
    data = np.fromfile(raw, dtype=dtype, count=count, offset=offset)
    if data.size != count:
        raise DataError(f"{raw}: holds {data.size} values, the header {header.name} says {count}")
    interleave = f.get("interleave", "bsq").lower()
    shapes = {"bsq": ((bands, lines, samples), (1, 2, 0)), "bil": ((lines, bands, samples), (0, 2, 1))}
    shapes["bip"] = ((lines, samples, bands), (0, 1, 2))
    if interleave not in shapes:
        raise DataError(f"{header}: unknown interleave {interleave!r} (bsq, bil, bip)")
    shape, axes = shapes[interleave]
    return np.ascontiguousarray(data.reshape(shape).transpose(axes)).astype(np.float32)


def write_envi(stem: PathLike, cube: np.ndarray, interleave: str = "bsq", dtype: str = "<u2") -> Path:
    """Write ``cube`` (H, W, bands) as ``stem.hdr`` + ``stem.raw``; returns the header path."""
    stem = Path(stem)
    dt = np.dtype(dtype)
    code = {np.dtype(v).newbyteorder("<").str: k for k, v in ENVI_TYPES.items()}[dt.newbyteorder("<").str]
    axes = {"bsq": (2, 0, 1), "bil": (0, 2, 1), "bip": (0, 1, 2)}[interleave]
    np.ascontiguousarray(np.asarray(cube).transpose(axes)).astype(dt).tofile(stem.with_suffix(".raw"))
    h, w, b = cube.shape
    header = stem.with_suffix(".hdr")
    header.write_text(
        f"ENVI\ndescription = {{reconad test cube}}\nsamples = {w}\nlines = {h}\nbands = {b}\n"
        f"header offset = 0\nfile type = ENVI Standard\ndata type = {code}\ninterleave = {interleave}\n"
        f"byte order = {1 if dt.byteorder == '>' else 0}\n"
    )
    return header


def _envi_map(header: Path) -> tuple[np.ndarray | None, Path | None]:
    stem = header.with_suffix("")
    for tag in ("_map", "_gt"):
        for cand in sorted(stem.parent.glob(stem.name + tag + ".*")):
            if cand.suffix.lower() == ".hdr":
                return read_envi(cand)[..., 0], cand
            if cand.suffix.lower() in (".png", ".tif", ".tiff", ".bmp"):
                from PIL import Image

                with Image.open(cand) as im:
                    return np.asarray(im.convert("L")), cand
    return None, None


# --------------------------------------------------------------------------- scenes


def load_scene(path: PathLike) -> Scene:
    """A scene from a ``.mat`` file or an ENVI header (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such scene file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".mat":
        cube_raw, gt_raw = _read_mat(path)
        map_path = path
    elif suffix == ".hdr":
        cube_raw = read_envi(path)
        gt_raw, found = _envi_map(path)
        map_path = found or path
    else:
        raise DataError(f"{path}: scenes are .mat files or ENVI headers (.hdr)")
    cube = _check_cube(cube_raw, path)
    gt = None if gt_raw is None else _check_map(gt_raw, cube, map_path)
    return Scene(path.stem, str(path), cube, gt)


def list_scenes(root: PathLike, names: list[str] | None = None) -> list[Path]:
    """Scene files (``.mat``, ``.hdr``) in ``root``, sorted; ``names`` picks some by file stem."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise DataError(f"scene folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in SCENE_SUFFIXES)
    files = [p for p in files if not re.search(r"_(map|gt)$", p.stem)]
    if not files:
        raise DataError(f"{root}: no scene files (.mat or ENVI .hdr)")
    if not names:
        return files
    by_name = {p.stem: p for p in files}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DataError(f"scene(s) {', '.join(missing)} not in {root}; it has {', '.join(sorted(by_name))}")
    return [by_name[n] for n in names]


def planted_scene(
    size: tuple[int, int] = (40, 40), bands: int = 30, n_anomalies: int = 12, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic cube (H, W, bands) uint16: smooth mixtures of three background materials
    with noise, plus ``n_anomalies`` single pixels of a foreign spectrum; and its map."""
    rng = np.random.default_rng(seed)
    h, w = size
    grid = np.linspace(0, 1, bands)
    materials = np.stack([0.3 + 0.2 * np.sin(3 * grid + k) for k in range(3)])
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    weights = np.stack([1 + np.sin(4 * xx), 1 + np.cos(3 * yy), 1 + np.sin(5 * (xx + yy))], axis=-1)
    weights /= weights.sum(-1, keepdims=True)
    cube = weights @ materials + 0.01 * rng.standard_normal((h, w, bands))
    gt = np.zeros((h, w), dtype=np.uint8)
    target = 0.35 + 0.25 * np.exp(-(((grid - 0.6) / 0.08) ** 2))
    for i in rng.choice(h * w, size=n_anomalies, replace=False):
        r, c = divmod(int(i), w)
        cube[r, c] = 0.5 * cube[r, c] + 0.5 * target
        gt[r, c] = 1
    return np.clip(cube * 10000, 0, 65535).astype(np.uint16), gt
