"""Cell features of frame sequences: appearance on one coarse grid, causal motion statistics,
and the nearest-neighbour distance of each cell to a bank of normal cells."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reconad.models.feature_maps import nearest_sq_distances


def frame_cells(encoder: torch.nn.Module, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames (N, C, H, W) in [0, 1] -> cells (N, D, h, w), every encoder level averaged onto the
    coarsest level's grid, and the grey level (N, 1, h, w) on the same grid."""
    rgb = frames.expand(-1, 3, -1, -1) if frames.shape[1] == 1 else frames
    levels = encoder(rgb)
    h = min(int(level.shape[-2]) for level in levels)
    w = min(int(level.shape[-1]) for level in levels)
    cells = torch.cat([F.adaptive_avg_pool2d(level.float(), (h, w)) for level in levels], 1)
    grey = F.adaptive_avg_pool2d(frames.float().mean(1, keepdim=True), (h, w))
    return cells, grey


def motion_stats(
    cells: torch.Tensor, grey: torch.Tensor, offsets: list[int], channels: list[int], first: int = 0
) -> torch.Tensor:
    """(T - first, len(offsets) x (levels + 1), h, w): for frames ``first`` .. T - 1 of the
    sequence and each offset d, the mean absolute change of each level's features (``channels``
    per level) and of the grey level since frame t - d (the sequence's first frame where it
    begins later: no motion is seen before a stream starts)."""
    t = torch.arange(first, int(cells.shape[0]), device=cells.device)
    bounds = torch.tensor([0, *channels]).cumsum(0).tolist()
    out = []
    for d in offsets:
        prev = (t - d).clamp_min(0)
        diff = (cells[t] - cells[prev]).abs()
        out += [diff[:, a:b].mean(1, keepdim=True) for a, b in zip(bounds[:-1], bounds[1:])]
        out.append((grey[t] - grey[prev]).abs())
    return torch.cat(out, 1)


def flat_cells(x: torch.Tensor) -> torch.Tensor:
    """(N, D, h, w) -> (N h w, D), the cells of each frame in row order."""
    return x.permute(0, 2, 3, 1).reshape(-1, int(x.shape[1]))


def nearest_distances(queries: torch.Tensor, bank: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Euclidean distance of each query row to its nearest bank row, ``chunk`` queries at a
    time (``nearest_sq_distances``)."""
    parts = [nearest_sq_distances(q, bank)[0][:, 0] for q in queries.split(chunk)]
    return torch.cat(parts).sqrt()


def causal_ema(x: torch.Tensor, decay: float, last: float | None = None) -> torch.Tensor:
    """s_t = decay s_(t-1) + (1 - decay) x_t over a sequence (T,), starting from ``last`` (the
    previous value of a stream) or from x_0."""
    if decay <= 0 or len(x) == 0:
        return x.clone()
    out = torch.empty_like(x)
    acc = float(x[0]) if last is None else last
    for i, v in enumerate(x.tolist()):
        acc = decay * acc + (1.0 - decay) * v if (i or last is not None) else v
        out[i] = acc
    return out
