"""Settings of HADGAN (hyperspectral anomaly detection GAN, Jiang et al., IEEE TGRS 2020)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.base import ModelConfig


@dataclass
class HADGANConfig(ModelConfig):
    """HADGAN settings.

    input_shape: ``[bands]``; the Detector fills it from the spectra.
    hidden: the two hidden layers of the encoder, decoder and both discriminators.
    latent_dim: size of z; None = ``floor(sqrt(bands)) + 1``.
    weight_rec / weight_latent / weight_shrink: the autoencoder's reconstruction term
    (mean half L2 norm of x - x_hat), the latent consistency term (z against E(De(z))) and
    the shrink term (mean z^2) that keeps the code near the prior's centre.
    weight_adv_z / weight_adv_x: the adversarial terms from the latent discriminator (z
    against N(0, I) samples) and the spectral discriminator (x against x_hat).
    lr_d: learning rate of both discriminators (None: the engine's ``lr``).
    lam: the fusion weight, D_SS = lam * D_spatial + (1 - lam) * D_spectral.
    spatial_bands: how many residual bands (lowest residual energy) the spatial detector uses.
    area_fraction: attribute (area) filter: bright residual structures smaller than this
    share of the scene's pixels count as anomalous.
    guided_radius / guided_eps: the guided filter that smooths the spatial map (window
    ``2r + 1``, regularisation eps on [0, 1] maps).
    """

    input_shape: list[int] | None = None
    hidden: list[int] | None = None
    latent_dim: int | None = None
    weight_rec: float = 1.0
    weight_latent: float = 1.0
    weight_shrink: float = 0.1
    weight_adv_z: float = 1.0
    weight_adv_x: float = 1.0
    lr_d: float | None = None
    lam: float = 0.5
    spatial_bands: int = 3
    area_fraction: float = 0.01
    guided_radius: int = 1
    guided_eps: float = 0.01

    def __post_init__(self) -> None:
        check_types(
            self,
            integers=("latent_dim", "spatial_bands", "guided_radius"),
            numbers=("weight_rec", "weight_latent", "weight_shrink", "weight_adv_z", "weight_adv_x", "lr_d", "lam"),
            optional=("latent_dim", "lr_d"),
        )
        if self.input_shape is not None and len(self.input_shape) != 1:
            raise ConfigError(f"hadgan takes spectra (input_shape [bands]), got input_shape {self.input_shape}")
        if self.hidden is not None and (len(self.hidden) != 2 or min(int(h) for h in self.hidden) < 1):
            raise ConfigError(f"hidden must be two sizes >= 1, got {self.hidden}")
        if not 0 <= self.lam <= 1:
            raise ConfigError(f"lam must be in [0, 1], got {self.lam}")
        if self.spatial_bands < 1 or self.guided_radius < 0 or self.guided_eps <= 0:
            raise ConfigError("spatial_bands must be >= 1, guided_radius >= 0 and guided_eps > 0")
        if not 0 < self.area_fraction < 1:
            raise ConfigError(f"area_fraction must be in (0, 1), got {self.area_fraction}")
        if self.lr_d is not None and self.lr_d <= 0:
            raise ConfigError(f"lr_d must be > 0, got {self.lr_d}")

    def resolved_hidden(self) -> list[int]:
        return [int(h) for h in self.hidden] if self.hidden is not None else [256, 256]

    def resolved_latent(self) -> int:
        if self.latent_dim is not None:
            return self.latent_dim
        assert self.input_shape is not None
        return int(math.isqrt(self.input_shape[0])) + 1
