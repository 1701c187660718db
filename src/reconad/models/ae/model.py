"""Plain autoencoder: conv for images, MLP for rows; score = mean squared reconstruction error."""

from __future__ import annotations

from typing import Any

import torch

from reconad.models.ae.config import AEConfig
from reconad.models.networks import VectorDecoder, VectorEncoder
from reconad.models.reconstruction import ReconstructionModel, squared_error


class AE(ReconstructionModel):
    """Encoder -> code of ``latent_dim`` -> decoder, trained on mean squared error."""

    name = "ae"

    def __init__(self, config: AEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or AEConfig(**kwargs))
        latent = self.config.resolved_latent()
        self.encoder = VectorEncoder(self.config, latent)
        self.decoder = VectorDecoder(self.config, latent)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return squared_error(x, self.reconstruct(x))[0].mean()

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return squared_error(x, self.reconstruct(x))
