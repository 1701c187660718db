"""Settings of f-AnoGAN."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.gan import GANConfig, check_betas, check_choice, check_lr, check_weights

TRAININGS = ("izif", "izi", "ziz")


@dataclass
class FAnoGANConfig(GANConfig):
    """f-AnoGAN settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    training: how the encoder learns, with G and the critic frozen: ``izif`` (image and
    critic-feature residual, the paper's best), ``izi`` (image residual) or ``ziz``
    (latent residual of G's samples).
    kappa: weight of the critic-feature residual in the izif loss and in the score (1.0).
    n_critic: critic steps per generator step (5, WGAN-GP's).  gp_weight: gradient
    penalty weight (10).
    encoder_share: share of the epochs (the last ones, at least one) that train the
    encoder; the first ones train the WGAN-GP (0.4).
    lr_e, betas_e: the encoder's Adam learning rate (None: the engine's lr) and betas.
    betas_g, betas_d default to WGAN-GP's (0, 0.9).  width: 32 (the paper's 64).
    latent_dim: None = 128 (the paper's).  Images only.
    """

    training: str = "izif"
    kappa: float = 1.0
    n_critic: int = 5
    gp_weight: float = 10.0
    encoder_share: float = 0.4
    lr_e: float | None = None
    betas_e: list[float] = field(default_factory=lambda: [0.9, 0.999])
    betas_g: list[float] = field(default_factory=lambda: [0.0, 0.9])
    betas_d: list[float] = field(default_factory=lambda: [0.0, 0.9])

    image_latent: ClassVar[int] = 128

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("training", self.training, TRAININGS)
        check_weights(self, "kappa", "gp_weight")
        check_types(self, integers=("n_critic",), numbers=("encoder_share",))
        if self.n_critic < 1:
            raise ConfigError(f"n_critic must be >= 1, got {self.n_critic}")
        if not 0 < self.encoder_share < 1:
            raise ConfigError(f"encoder_share must be in (0, 1), got {self.encoder_share}")
        check_lr("lr_e", self.lr_e)
        self.betas_e = check_betas("betas_e", self.betas_e)

    def gan_epochs(self, epochs: int) -> int:
        """How many of ``epochs`` train the WGAN-GP (the rest, at least one, the encoder)."""
        if epochs < 2:
            return 0
        return min(epochs - 1, max(1, epochs - max(1, round(self.encoder_share * epochs))))
