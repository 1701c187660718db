"""Heat-map overlays a person can look at."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from reconad.atomic import atomic_path
from reconad.png_writer import encode_rgb_png

if TYPE_CHECKING:
    import torch


def _as_array(image: np.ndarray | torch.Tensor) -> np.ndarray:
    return image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)


def _hwc(image: np.ndarray | torch.Tensor, size: tuple[int, ...] | None = None) -> np.ndarray:
    """``image`` as (H, W, C).  (C, H, W) is told from (H, W, C) by the map's (H, W) ``size``
    where one is given, so a thin or 1-pixel image (3 x 200, 1 x 1) is never turned twice;
    without one, by a first axis of 1 or 3 channels that is not also the image's last."""
    img = _as_array(image)
    if img.ndim == 2:
        return img[..., None]
    if size is not None and len(size) == 2:
        if tuple(img.shape[:2]) == tuple(size) and img.shape[-1] in (1, 3):
            return img
        if tuple(img.shape[1:]) == tuple(size):
            return np.transpose(img, (1, 2, 0))
    if img.shape[0] in (1, 3) and img.shape[-1] not in (1, 3):
        return np.transpose(img, (1, 2, 0))
    return img


_JET: np.ndarray | None = None


def _jet_table() -> np.ndarray:
    """matplotlib's "jet" as its own 256-entry table (float, 0..1), read once."""
    global _JET
    if _JET is None:
        from matplotlib import colormaps

        cmap = colormaps["jet"]
        _JET = cmap(np.arange(cmap.N) / (cmap.N - 1))[:, :3]
    return _JET


def overlay(
    image: np.ndarray | torch.Tensor, amap: np.ndarray, vmin: float, vmax: float, alpha: float = 0.45
) -> np.ndarray:
    """Blend a colour-mapped anomaly map over an image.

    ``image``: (3,H,W) or (H,W,3) float in [0,1]; ``amap``: (H,W).  The map is scaled
    on a fixed range [vmin, vmax] (the same for every image of a run, so colours are
    comparable: red means at or above ``vmax``).  Returns (H, W, 3) uint8.
    """
    img = _hwc(image, np.shape(amap))
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    span = max(vmax - vmin, 1e-12)
    jet = _jet_table()
    n = len(jet)
    # the table's entry of each pixel, in float32 (the blend is written as 8 bits anyway)
    scaled = (np.asarray(amap, dtype=np.float32) - np.float32(vmin)) * np.float32(n / span)
    index = np.clip(np.nan_to_num(scaled, nan=0.0, posinf=n - 1, neginf=0.0), 0, n - 1).astype(np.intp)
    heat = (alpha * jet).astype(np.float32)[index]
    out = np.asarray(img, dtype=np.float32) * np.float32(1 - alpha) + heat
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def save_overlay(
    path: str | os.PathLike,
    image: np.ndarray | torch.Tensor,
    amap: np.ndarray,
    vmin: float,
    vmax: float,
    mask: np.ndarray | None = None,
) -> Path:
    """Write the image and its overlay side by side (plus the ground-truth mask if given),
    as a PNG from :func:`reconad.png_writer.encode_rgb_png` (lossless, fast)."""
    img = _hwc(image, np.shape(amap))
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    panels = [(np.clip(img, 0, 1) * 255).astype(np.uint8), overlay(img, amap, vmin, vmax)]
    if mask is not None:
        m = (np.asarray(mask).reshape(img.shape[:2]) > 0.5).astype(np.uint8) * 255
        panels.append(np.repeat(m[..., None], 3, axis=-1))
    gap = np.full((img.shape[0], 4, 3), 255, dtype=np.uint8)
    row = panels[0]
    for p in panels[1:]:
        row = np.concatenate([row, gap, p], axis=1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_rgb_png(row)
    with atomic_path(path) as tmp:  # a kill leaves the old overlay or the new one
        tmp.write_bytes(data)
    return path


def mask_outline(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """The boundary pixels (``width`` thick, inside the region) of a binary mask, as bool (H, W)."""
    from scipy import ndimage

    m = np.asarray(mask) > 0.5
    if not m.any():
        return np.zeros_like(m)
    inner = ndimage.binary_erosion(m, iterations=max(int(width), 1), border_value=0)
    return m & ~inner


def draw_outline(
    rgb: np.ndarray, mask: np.ndarray, color: tuple[int, int, int] = (255, 255, 255), width: int = 1
) -> np.ndarray:
    """A copy of the uint8 (H, W, 3) ``rgb`` with the ground-truth region of ``mask`` outlined."""
    out = np.array(rgb, dtype=np.uint8, copy=True)
    out[mask_outline(np.asarray(mask).reshape(out.shape[:2]), width)] = color
    return out


def overlay_panel(
    image: np.ndarray | torch.Tensor,
    amap: np.ndarray,
    vmin: float,
    vmax: float,
    mask: np.ndarray | None = None,
    size: int | None = None,
    gap: int = 4,
) -> np.ndarray:
    """The image beside its heat-map overlay, the ground-truth region outlined on the overlay.

    ``size`` (optional) scales each panel to that many pixels on its longer side (for
    thumbnails).  Returns (H, 2W + gap, 3) uint8 with a white gap.
    """
    img = _hwc(image, np.shape(amap))
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    plain = (np.clip(img, 0, 1) * 255).astype(np.uint8)
    heat = overlay(img, amap, vmin, vmax)
    if size is not None and max(plain.shape[:2]) != size:
        h, w = plain.shape[:2]
        scale = size / max(h, w)
        new = (max(1, round(w * scale)), max(1, round(h * scale)))
        plain = np.asarray(Image.fromarray(plain).resize(new, Image.Resampling.BILINEAR))
        heat = np.asarray(Image.fromarray(heat).resize(new, Image.Resampling.BILINEAR))
        if mask is not None:
            m = (np.asarray(mask).reshape(h, w) > 0.5).astype(np.uint8) * 255
            mask = np.asarray(Image.fromarray(m).resize(new, Image.Resampling.NEAREST)) > 127
    if mask is not None:
        width = max(1, round(max(plain.shape[:2]) / 128))
        heat = draw_outline(heat, mask, (255, 255, 255), width)
    spacer = np.full((plain.shape[0], gap, 3), 255, dtype=np.uint8)
    return np.concatenate([plain, spacer, heat], axis=1)
