"""ALAD's cycle discriminators D_xx (x, x') and D_zz (z, z')."""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.alad.config import ALADConfig
from reconad.models.gan import ImageDiscriminator, RowDiscriminator, conv_plan


class PairOf(nn.Module):
    """D(a, b) = D'(concat(a, b)) -> (logits, features); images concatenate on channels."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.inner(torch.cat([a, b], dim=1))


def build_dxx(cfg: ALADConfig) -> PairOf:
    """D_xx: two stride-2 convolutions without normalisation (images) or a 128-unit layer (rows)."""
    shape = cfg.input_shape
    assert shape is not None
    if cfg.is_table:
        return PairOf(RowDiscriminator(2 * shape[0], [128], spectral=cfg.resolved_spectral_norm(), dropout=cfg.dropout))
    plan = conv_plan(2 * shape[0], shape[1:], cfg.width, cfg.min_size)
    return PairOf(ImageDiscriminator(plan, norm="none", spectral=cfg.resolved_spectral_norm(), dropout=cfg.dropout))


def build_dzz(cfg: ALADConfig) -> PairOf:
    """D_zz: an MLP over (z, z') (64 -> 32 units for images, 32 for rows, as the official code)."""
    latent = cfg.resolved_latent()
    hidden = [32] if cfg.is_table else [64, 32]
    return PairOf(RowDiscriminator(2 * latent, hidden, spectral=cfg.resolved_spectral_norm(), dropout=cfg.dropout))
