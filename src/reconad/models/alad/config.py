"""Settings of ALAD (adversarially learned anomaly detection)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from reconad.errors import ConfigError
from reconad.models.gan import GANConfig, check_choice

SCORES = ("fm", "l1", "l2", "ce")


@dataclass
class ALADConfig(GANConfig):
    """ALAD settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    score: ``fm`` (the paper's ||f_xx(x, x) - f_xx(x, G(E(x)))||_1), ``l1`` / ``l2``
    (||x - G(E(x))|| norms) or ``ce`` (cross-entropy of D_xx(x, G(E(x))) against "real"),
    the official code's four scores.
    spectral_norm: spectral normalisation of the encoder and the three discriminators
    (the paper's; on by default here).
    use_dzz: train the latent cycle discriminator D_zz (the paper's full model, on).
    dropout: dropout in the discriminators (0.2, the official code's).
    joint: D_xz's joint hidden layer (its features): 1024 for images, 128 for rows.
    latent_dim: None = 100 for images (the official CIFAR-10 code's), 32 for rows.
    hidden: the encoder's / generator's hidden sizes for rows (default [64]).  width: 32.
    """

    score: str = "fm"
    spectral_norm: bool = True
    use_dzz: bool = True
    ema_decay: float = 0.999
    dropout: float = 0.2
    joint: int | None = None

    #: model files saved before the weight average existed scored their last weights
    legacy_values: ClassVar[dict[str, Any]] = {"ema_decay": 0.0}
    image_latent: ClassVar[int] = 100
    table_latent: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("score", self.score, SCORES)
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.joint is not None and self.joint < 1:
            raise ConfigError(f"joint must be >= 1, got {self.joint}")

    def resolved_joint(self) -> int:
        return self.joint if self.joint is not None else (128 if self.is_table else 1024)
