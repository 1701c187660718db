"""What models working on encoder feature maps share: patch features, distances, smoothing."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["gaussian_blur", "gaussian_kernel1d", "locally_aware_patches", "nearest_sq_distances"]


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(m: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Separable blur of (B, h, w) maps with the 1-D kernel ``k``."""
    r = k.numel() // 2
    x = m.unsqueeze(1)
    # Reflection needs a pad smaller than the map; a wider blur than that replicates the edge.
    mode_w = "reflect" if r < x.shape[-1] else "replicate"
    mode_h = "reflect" if r < x.shape[-2] else "replicate"
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode_w), k.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode_h), k.view(1, 1, -1, 1))
    return x.squeeze(1)


def nearest_sq_distances(a: torch.Tensor, b: torch.Tensor, k: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Squared Euclidean distances (n, k) of each row of ``a`` (n, D) to its ``k`` nearest
    rows of ``b`` (m, D), nearest first, and their indices (n, k).

    |a|^2 does not change which rows of ``b`` are nearest, so it is added after the
    selection: the (n, m) matrix is written once (one ``addmm``: |b|^2 - 2 a.b, a ``Gemm``
    in an export) and read once, where the full distance matrix took three passes more
    (BENCHMARKS §15.8)."""
    partial = torch.addmm((b * b).sum(1), a, b.t(), alpha=-2.0)
    if k == 1:
        near, idx = partial.min(dim=1, keepdim=True)
    else:
        near, idx = partial.topk(k, dim=1, largest=False)
    return (near + (a * a).sum(1, keepdim=True)).clamp_min(0.0), idx


def locally_aware_patches(levels: list[torch.Tensor], patch_size: int = 3) -> torch.Tensor:
    """(B, h, w, D) patch features: each level averaged over a ``patch_size`` neighbourhood
    (stride 1), the deeper ones upsampled (bilinear) to the first level's grid, concatenated."""
    k = patch_size
    pooled = [F.avg_pool2d(f.float(), k, stride=1, padding=k // 2, count_include_pad=False) for f in levels]
    size = tuple(int(v) for v in pooled[0].shape[-2:])
    pooled = [
        p if tuple(p.shape[-2:]) == size else F.interpolate(p, size=size, mode="bilinear", align_corners=False)
        for p in pooled
    ]
    return torch.cat(pooled, dim=1).permute(0, 2, 3, 1).contiguous()
