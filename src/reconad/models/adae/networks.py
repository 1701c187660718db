"""ADAE's networks: two autoencoders of the same shape, the generator G and the discriminator D."""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.adae.config import ADAEConfig
from reconad.models.gan import ConvTrunk, ConvUp, ImageEncoder, ImageGenerator, image_plan, init_dcgan, mlp


class Autoencoder(nn.Module):
    """x -> x_hat of the same shape.

    Images: a DCGAN encoder (stride-2 4x4 stages down to at most ``min_size`` px) and its
    mirror of transposed convolutions ending in tanh, with ``cfg.norm`` normalisation;
    between them a code of ``latent_dim`` numbers (``image_code``: the family's
    :class:`ImageEncoder` and :class:`ImageGenerator`) or the smallest map itself (``image_code=False``).
    Rows: an MLP ``D -> hidden -> latent -> reversed(hidden) -> D`` (no output activation).
    """

    def __init__(self, cfg: ADAEConfig) -> None:
        super().__init__()
        shape = cfg.input_shape
        assert shape is not None
        if cfg.is_table:
            hidden, latent = cfg.resolved_hidden(), cfg.resolved_latent()
            self.encoder: nn.Module = mlp([shape[0], *hidden, latent])
            self.decoder: nn.Module = mlp([latent, *reversed(hidden), shape[0]])
        else:
            plan = image_plan(cfg)
            if cfg.image_code:
                latent = cfg.resolved_latent()
                self.encoder = ImageEncoder(plan, latent, norm=cfg.norm)
                self.decoder = ImageGenerator(plan, latent, shape[0], norm=cfg.norm)
            else:
                self.encoder = ConvTrunk(plan, cfg.norm)
                self.decoder = ConvUp(plan, shape[0], cfg.norm)
                init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))
