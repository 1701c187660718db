"""HADGAN's detectors on the residual image |Y - Y_hat| (H, W, bands) of a whole scene.

* spectral: global RX on the residual spectra (``reconad.models.rx.mahalanobis``; the
  background statistics are those of the training residuals, fitted after training);
* spatial: the residual bands with the lowest energy (sum of squares over the scene: the
  bands the network reconstructs best, where what it fails on stands out), each passed
  through an area attribute filter: the band minus its area opening, which keeps bright
  connected structures smaller than ``area`` pixels (anomalies are small); their mean is
  smoothed by a guided filter (He et al., 2010) guided by itself;
* fusion: both maps min-max scaled to [0, 1], ``D_SS = lam * D_spatial + (1 - lam) * D_spectral``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["fuse", "guided_filter", "minmax", "spatial_detector"]


def minmax(a: np.ndarray) -> np.ndarray:
    """``a`` scaled to [0, 1] (all zeros when it is constant)."""
    a = np.asarray(a, dtype=np.float64)
    lo, span = float(a.min()), float(np.ptp(a))
    return (a - lo) / span if span > 0 else np.zeros_like(a)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``src`` guided by ``guide`` (both (H, W)), window ``2r+1``."""
    from scipy.ndimage import uniform_filter

    if radius <= 0:
        return np.asarray(src, dtype=np.float64)
    size = 2 * radius + 1
    box = lambda a: uniform_filter(a, size=size, mode="reflect")
    g, p = np.asarray(guide, np.float64), np.asarray(src, np.float64)
    mean_g, mean_p = box(g), box(p)
    var_g = box(g * g) - mean_g**2
    cov_gp = box(g * p) - mean_g * mean_p
    a = cov_gp / (var_g + eps)
    b = mean_p - a * mean_g
    return box(a) * g + box(b)


def spatial_detector(residual: np.ndarray, bands: int, area: int, radius: int, eps: float) -> np.ndarray:
    """The spatial detection map (H, W) of a residual cube (H, W, B); see the module docstring."""
    from skimage.morphology import area_opening

    energy = (np.asarray(residual, np.float64) ** 2).sum(axis=(0, 1))
    picks = np.argsort(energy, kind="stable")[: max(1, min(bands, residual.shape[2]))]
    tops = []
    for b in picks:
        band = minmax(residual[:, :, b])
        tops.append(band - _opened(area_opening, band, max(1, int(area))))
    feature = minmax(np.mean(tops, axis=0))
    return guided_filter(feature, feature, radius, eps)


def _opened(area_opening: Any, band: np.ndarray, area: int) -> np.ndarray:
    """``area_opening`` of ``band``; a scene under 3 pixels on a side (which scikit-image's
    filter cannot take) is padded by its edge values to 3 and cropped back."""
    h, w = band.shape
    if h >= 3 and w >= 3:
        return np.asarray(area_opening(band, area_threshold=area))
    padded = np.pad(band, ((0, max(0, 3 - h)), (0, max(0, 3 - w))), mode="edge")
    return np.asarray(area_opening(padded, area_threshold=area))[:h, :w]


def fuse(spatial: np.ndarray, spectral: np.ndarray, lam: float) -> np.ndarray:
    """``lam * minmax(spatial) + (1 - lam) * minmax(spectral)``."""
    return lam * minmax(spatial) + (1.0 - lam) * minmax(spectral)
