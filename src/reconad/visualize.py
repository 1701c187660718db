"""Heat-map overlays a person can look at."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def _colormap(values: np.ndarray) -> np.ndarray:
    from matplotlib import colormaps

    return colormaps["jet"](values)[..., :3]


def overlay(image: np.ndarray | torch.Tensor, amap: np.ndarray, vmin: float, vmax: float, alpha: float = 0.45) -> np.ndarray:
    """Blend a colour-mapped anomaly map over an image.

    ``image``: (3,H,W) or (H,W,3) float in [0,1]; ``amap``: (H,W).  The map is scaled
    on a fixed range [vmin, vmax] (the same for every image of a run, so colours are
    comparable: red means at or above ``vmax``).  Returns (H, W, 3) uint8.
    """
    img = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.transpose(img, (1, 2, 0))
    if img.shape[-1] == 1:
        img = np.repeat(img, 3, axis=-1)
    span = max(vmax - vmin, 1e-12)
    norm = np.clip((np.asarray(amap, dtype=np.float64) - vmin) / span, 0, 1)
    heat = _colormap(norm)
    out = (1 - alpha) * img + alpha * heat
    return (np.clip(out, 0, 1) * 255).astype(np.uint8)


def save_overlay(path: str | os.PathLike, image: np.ndarray | torch.Tensor, amap: np.ndarray, vmin: float,
                 vmax: float, mask: np.ndarray | None = None) -> Path:
    """Write the image and its overlay side by side (plus the ground-truth mask if given)."""
    img = image.detach().cpu().numpy() if torch.is_tensor(image) else np.asarray(image)
    if img.ndim == 3 and img.shape[0] in (1, 3):
        img = np.transpose(img, (1, 2, 0))
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
    Image.fromarray(row).save(path)
    return path
