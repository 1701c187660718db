"""Plain autoencoder: conv for images, MLP for rows, 3-D conv for video clips; score = mean
squared reconstruction error.

The clip variant is MemAE's video network without the memory (the paper's "AE" baseline):
the 3-D feature map goes straight to the decoder, so a table of both shows what the
memory adds.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from reconad.models.ae.config import AEConfig
from reconad.models.networks import VectorDecoder, VectorEncoder
from reconad.models.networks3d import Conv3dDecoder, Conv3dEncoder
from reconad.models.reconstruction import ReconstructionModel, squared_error


class AE(ReconstructionModel):
    """Encoder -> code of ``latent_dim`` -> decoder, trained on mean squared error."""

    name = "ae"
    input_kinds = ("image", "table", "video")

    def __init__(self, config: AEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or AEConfig(**kwargs))
        if self.is_video:
            c, t, h, w = self.config.input_shape
            conv3 = Conv3dEncoder(c, (t, h, w), self.config.width)
            self.encoder: nn.Module = conv3
            self.decoder: nn.Module = Conv3dDecoder(conv3)
            return
        latent = self.config.resolved_latent()
        self.encoder = VectorEncoder(self.config, latent)
        self.decoder = VectorDecoder(self.config, latent)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return squared_error(x, self.reconstruct(x))[0].mean()

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return squared_error(x, self.reconstruct(x))
