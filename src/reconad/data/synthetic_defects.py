"""Synthetic defects pasted into normal images (numpy only, seeded, no outside data).

Two generators with different shapes and fill rules, so that a choice validated on
one is not tuned to the corruption another trained on:

* :func:`training_defect` (HFR's denoising objective): a Perlin-noise mask filled with
  another training image's content or a shifted, jittered copy of the same image, or a
  cut-paste scar (a thin rotated strip of the image moved elsewhere).
* :func:`validation_defect` (``model="auto"``'s selection): a filled ellipse with an
  intensity or texture shift, a stroke (a random walk of a few pixels' width), or a
  large smooth low-contrast shading blob, the kind of "uneven" defect a coarse
  reconstruction tends to rebuild.

Images are float arrays (3, H, W) in [0, 1] (torch tensors are accepted and returned as
tensors); each generator returns ``(image, mask)`` with ``mask`` (H, W) of {0, 1},
never empty.  :class:`SyntheticDefectSet` wraps a dataset of normal images into one of
normals and their defective copies, with masks, for scoring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from reconad.data.records import ImageItem
from reconad.data.sizes import dataset_size

__all__ = ["SyntheticDefectSet", "perlin_noise", "training_defect", "validation_defect"]


def _fade(t: np.ndarray) -> np.ndarray:
    return t * t * t * (t * (t * 6 - 15) + 10)


def perlin_noise(shape: tuple[int, int], cells: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """2-D gradient (Perlin) noise of ``shape`` with ``cells`` lattice cells per axis, about in [-1, 1]."""
    h, w = shape
    cy, cx = max(1, cells[0]), max(1, cells[1])
    angles = rng.uniform(0, 2 * np.pi, size=(cy + 1, cx + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    y = np.linspace(0, cy, h, endpoint=False)
    x = np.linspace(0, cx, w, endpoint=False)
    yy, xx = np.meshgrid(y, x, indexing="ij")
    y0, x0 = yy.astype(int), xx.astype(int)
    fy, fx = yy - y0, xx - x0

    def corner(dy: int, dx: int) -> np.ndarray:
        g = grad[y0 + dy, x0 + dx]
        return g[..., 0] * (fy - dy) + g[..., 1] * (fx - dx)

    uy, ux = _fade(fy), _fade(fx)
    top = corner(0, 0) * (1 - ux) + corner(0, 1) * ux
    bottom = corner(1, 0) * (1 - ux) + corner(1, 1) * ux
    return (top * (1 - uy) + bottom * uy) * np.sqrt(2)


def _as_array(image: Any) -> tuple[np.ndarray, bool]:
    if isinstance(image, torch.Tensor):
        return image.detach().cpu().numpy().astype(np.float32), True
    return np.asarray(image, dtype=np.float32), False


def _out(image: np.ndarray, mask: np.ndarray, tensor: bool) -> tuple[Any, Any]:
    image = np.clip(image, 0.0, 1.0).astype(np.float32)
    mask = mask.astype(np.float32)
    if tensor:
        return torch.from_numpy(image), torch.from_numpy(mask)
    return image, mask


def _non_empty(mask: np.ndarray, score: np.ndarray) -> np.ndarray:
    """``mask``, or the single highest-``score`` pixel when the mask came out empty."""
    if mask.any():
        return mask
    out = np.zeros_like(mask)
    out[np.unravel_index(int(np.argmax(score)), score.shape)] = True
    return out


# --------------------------------------------------------------- training generator
def _perlin_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A blobby mask covering 1-12 % of the image, from thresholded Perlin noise."""
    k = int(rng.integers(1, 4))
    noise = perlin_noise((h, w), (2**k, 2**k), rng)
    area = rng.uniform(0.01, 0.12)
    return _non_empty(noise > np.quantile(noise, 1.0 - area), noise)


def _jittered(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same image shifted, maybe flipped, with its brightness and contrast changed."""
    _, h, w = image.shape
    out = np.roll(image, (int(rng.integers(h // 4, h)), int(rng.integers(w // 4, w))), axis=(1, 2))
    if rng.random() < 0.5:
        out = out[:, ::-1, :]
    mean = out.mean(axis=(1, 2), keepdims=True)
    return (out - mean) * rng.uniform(0.5, 1.5) + mean + rng.uniform(-0.2, 0.2)


def _scar(image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cut-paste scar: a thin rotated strip of the image pasted at another place."""
    _, h, w = image.shape
    length, width = rng.uniform(0.1, 0.3) * min(h, w), max(2.0, rng.uniform(0.01, 0.04) * min(h, w))
    theta = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u = (xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)
    v = -(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)
    mask = _non_empty((np.abs(u) <= length / 2) & (np.abs(v) <= width / 2), -np.abs(u) - np.abs(v))
    source = np.roll(image, (int(rng.integers(h // 4, h)), int(rng.integers(w // 4, w))), axis=(1, 2))
    source = source * rng.uniform(0.7, 1.3)
    return np.where(mask[None], source, image), mask


def training_defect(image: Any, rng: np.random.Generator, other: Any = None) -> tuple[Any, Any]:
    """``image`` (3, H, W) with one defect of the training generator, and its mask (H, W).

    A Perlin mask filled (with a blend of 0.5-1) from ``other`` (another normal image of
    the same size, when given) or a jittered copy of ``image``; a third of the time a
    cut-paste scar instead.
    """
    img, tensor = _as_array(image)
    _, h, w = img.shape
    kind = rng.random()
    if kind < 1 / 3:
        out, mask = _scar(img, rng)
        return _out(out, mask, tensor)
    mask = _perlin_mask(h, w, rng)
    if other is not None and kind < 2 / 3:
        fill, _ = _as_array(other)
        if fill.shape != img.shape:
            fill = _jittered(img, rng)
    else:
        fill = _jittered(img, rng)
    beta = rng.uniform(0.5, 1.0)
    out = np.where(mask[None], (1 - beta) * img + beta * fill, img)
    return _out(out, mask, tensor)


# ------------------------------------------------------------- validation generator
def _ellipse(h: int, w: int, rng: np.random.Generator, scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(inside, a soft weight falling to 0 at the rim) of a random rotated ellipse."""
    a, b = rng.uniform(*scale, size=2) * min(h, w)
    theta = rng.uniform(0, np.pi)
    cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u = ((xx - cx) * np.cos(theta) + (yy - cy) * np.sin(theta)) / a
    v = (-(xx - cx) * np.sin(theta) + (yy - cy) * np.cos(theta)) / b
    r2 = u * u + v * v
    return _non_empty(r2 <= 1.0, -r2), np.clip(1.0 - r2, 0.0, 1.0)


def _shift_ellipse(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """An ellipse whose content is brightened/darkened, de-textured or re-textured."""
    _, h, w = img.shape
    mask, soft = _ellipse(h, w, rng, (0.05, 0.2))
    mode = rng.integers(3)
    if mode == 0:
        fill = img + rng.choice([-1, 1]) * rng.uniform(0.08, 0.25)
    elif mode == 1:  # texture removed: the region's mean colour
        fill = np.broadcast_to(img[:, mask].mean(axis=1)[:, None, None], img.shape)
    else:  # texture added: grain
        fill = img + rng.normal(0.0, rng.uniform(0.05, 0.15), size=(1, h, w))
    weight = np.sqrt(soft)[None]
    return img * (1 - weight) + fill * weight, mask


def _stroke(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random-walk stroke a few pixels wide, darker or brighter than its surroundings."""
    _, h, w = img.shape
    radius = max(1.0, rng.uniform(0.006, 0.02) * min(h, w))
    steps = int(rng.integers(20, 60))
    y, x = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
    heading = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    mask = np.zeros((h, w), dtype=bool)
    step = 0.008 * min(h, w) + 0.5
    for _ in range(steps):
        heading += rng.normal(0.0, 0.3)
        y = float(np.clip(y + step * np.sin(heading), 0, h - 1))
        x = float(np.clip(x + step * np.cos(heading), 0, w - 1))
        mask |= (yy - y) ** 2 + (xx - x) ** 2 <= radius * radius
    mask = _non_empty(mask, -((yy - y) ** 2 + (xx - x) ** 2))
    delta = rng.choice([-1, 1]) * rng.uniform(0.15, 0.35)
    return np.where(mask[None], img + delta, img), mask


def _shading(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A large smooth low-contrast shading blob (a multiplicative change of 8-20 %)."""
    _, h, w = img.shape
    _, soft = _ellipse(h, w, rng, (0.15, 0.35))
    gain = 1.0 + rng.choice([-1, 1]) * rng.uniform(0.08, 0.2)
    weight = soft[None] ** 0.5
    return img * (1 + (gain - 1) * weight), _non_empty(soft > 0.25, soft)


def validation_defect(image: Any, rng: np.random.Generator) -> tuple[Any, Any]:
    """``image`` (3, H, W) with one defect of the validation generator, and its mask (H, W):
    an ellipse with an intensity/texture shift, a stroke or a shading blob, a third each."""
    img, tensor = _as_array(image)
    kind = int(rng.integers(3))
    make = (_shift_ellipse, _stroke, _shading)[kind]
    out, mask = make(img, rng)
    return _out(out, mask, tensor)


class SyntheticDefectSet(Dataset):
    """The normal images of ``base`` (label 0) followed by ``copies`` defective copies of
    each (label 1, with masks) from the validation generator; seeded, the same every time."""

    def __init__(self, base: Dataset, copies: int = 2, seed: int = 0) -> None:
        self.base = base
        self.copies = int(copies)
        self.seed = int(seed)
        self.n = dataset_size(base)

    def __len__(self) -> int:
        return self.n * (1 + self.copies)

    def __getitem__(self, i: int) -> ImageItem:
        item = self.base[i % self.n]
        if i < self.n:
            return ImageItem(item.image, 0, torch.zeros(1, *item.image.shape[-2:]), item.path)
        rng = np.random.default_rng([self.seed, i])
        image, mask = validation_defect(item.image, rng)
        return ImageItem(image, 1, mask[None], item.path, "synthetic")
