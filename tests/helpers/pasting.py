"""An obvious defect to paste on normal test images."""

from __future__ import annotations

import torch


def paste_square(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A saturated red 14x14 square (out of distribution for grey brick) on 64 px images."""
    mask = torch.zeros(x.shape[-2:], dtype=torch.bool)
    mask[16:30, 30:44] = True
    bad = x.clone()
    for c, v in enumerate((1.0, 0.0, 0.0)):
        bad[:, c][:, mask] = v
    return bad, mask
