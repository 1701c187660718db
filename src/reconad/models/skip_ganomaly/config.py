"""Settings of Skip-GANomaly."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.errors import ConfigError
from reconad.models.gan import GANConfig, check_weights


@dataclass
class SkipGANomalyConfig(GANConfig):
    """Skip-GANomaly settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    w_adv, w_con, w_lat: weights of the adversarial (BCE), contextual (L1 reconstruction)
    and latent (discriminator-feature L2) losses of the generator; the paper's 1 / 40 / 1.
    score_weight: lambda of the score lambda·R(x) + (1 - lambda)·L(x); the paper's 0.9.
    width: channels of the first conv stage (32; the paper's U-Net uses 64).
    Images only (``latent_dim`` and ``hidden`` are not used: the U-Net has no code vector).
    """

    w_adv: float = 1.0
    w_con: float = 40.0
    w_lat: float = 1.0
    score_weight: float = 0.9

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self, "w_adv", "w_con", "w_lat", "score_weight")
        if self.score_weight > 1:
            raise ConfigError(f"score_weight must be in [0, 1], got {self.score_weight}")
