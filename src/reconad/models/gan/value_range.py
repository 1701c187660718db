"""The value range the networks work in: [0, 1] images in, [-1, 1] inside, maps in [0, 1] units."""

from __future__ import annotations

import torch


def to_signed(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1], the range the networks (and tanh generators) work in."""
    return images * 2.0 - 1.0


def pixel_residual(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """|x - x_hat| of [-1, 1] images, in [0, 1] image units (what the maps show)."""
    return (x - x_hat).abs() * 0.5
