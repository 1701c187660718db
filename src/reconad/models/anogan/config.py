"""Settings of AnoGAN."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.gan import GANConfig


@dataclass
class AnoGANConfig(GANConfig):
    """AnoGAN settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    lam: lambda of the mapping loss and the score, (1 - lambda)·R + lambda·D; the paper's 0.1.
    search_steps: Gamma, gradient steps of the latent search per image (the paper's 500;
    each costs a generator and a discriminator pass forward and back, so scoring is slow).
    search_lr: Adam learning rate of the search over z.
    search_seed: seed of the search's own random generator (the starting points z_0), so
    the same images in the same batch get the same scores every time.
    width: channels of the first conv stage (32; DCGAN uses 64).  latent_dim: None = 100.
    Images only.
    """

    lam: float = 0.1
    search_steps: int = 500
    search_lr: float = 0.05
    search_seed: int = 0

    image_latent: ClassVar[int] = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        check_types(self, integers=("search_steps", "search_seed"), numbers=("lam", "search_lr"))
        if not 0 <= self.lam <= 1:
            raise ConfigError(f"lam must be in [0, 1], got {self.lam}")
        if self.search_steps < 0:
            raise ConfigError(f"search_steps must be >= 0, got {self.search_steps}")
        if self.search_lr <= 0:
            raise ConfigError(f"search_lr must be > 0, got {self.search_lr}")
