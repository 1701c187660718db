"""GANomaly's networks: generator G = G_E -> G_D -> E (encoder-decoder-encoder), discriminator D."""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.gan import (
    ImageDiscriminator,
    ImageEncoder,
    ImageGenerator,
    RowDiscriminator,
    conv_plan,
    mlp,
)
from reconad.models.ganomaly.config import GANomalyConfig


class EncoderDecoderEncoder(nn.Module):
    """x -> z = G_E(x) -> x_hat = G_D(z) -> z_hat = E(x_hat); returns (x_hat, z, z_hat)."""

    def __init__(self, cfg: GANomalyConfig) -> None:
        super().__init__()
        shape = cfg.input_shape
        assert shape is not None
        latent = cfg.resolved_latent()
        if cfg.is_table:
            hidden = cfg.resolved_hidden()
            self.encoder: nn.Module = mlp([shape[0], *hidden, latent])
            self.decoder: nn.Module = mlp([latent, *reversed(hidden), shape[0]])
            self.encoder2: nn.Module = mlp([shape[0], *hidden, latent])
        else:
            plan = conv_plan(shape[0], shape[1:], cfg.width, cfg.min_size)
            self.encoder = ImageEncoder(plan, latent)
            self.decoder = ImageGenerator(plan, latent, shape[0])
            self.encoder2 = ImageEncoder(plan, latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        x_hat = self.decoder(z)
        return x_hat, z, self.encoder2(x_hat)


def build_discriminator(cfg: GANomalyConfig) -> nn.Module:
    """DCGAN discriminator for images, an MLP of ``hidden`` for rows; returns (logits, features)."""
    shape = cfg.input_shape
    assert shape is not None
    if cfg.is_table:
        return RowDiscriminator(shape[0], cfg.resolved_hidden(), spectral=cfg.resolved_spectral_norm())
    return ImageDiscriminator(
        conv_plan(shape[0], shape[1:], cfg.width, cfg.min_size), spectral=cfg.resolved_spectral_norm()
    )
