"""Settings of the variational autoencoder (VAE)."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.networks import NetConfig


@dataclass
class VAEConfig(NetConfig):
    """VAE settings (plus the shared network settings of :class:`NetConfig`).

    n_samples: L, the latent samples each score term is averaged over.
    score_seed: seed of the scoring samples, so the same input always gets the same score.
    """

    n_samples: int = 10
    score_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_types(self, integers=("n_samples", "score_seed"))
        if self.n_samples < 1:
            raise ConfigError(f"n_samples must be >= 1, got {self.n_samples}")
