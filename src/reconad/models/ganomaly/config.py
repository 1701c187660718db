"""Settings of GANomaly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reconad.models.gan import GANConfig, check_choice, check_weights

SCORES = ("l1", "l2")


@dataclass
class GANomalyConfig(GANConfig):
    """GANomaly settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    w_adv, w_con, w_enc: weights of the adversarial (feature matching), contextual (L1
    reconstruction) and encoder (latent) losses of the generator; the paper's 1 / 50 / 1.
    score: the latent distance ``||G_E(x) - E(G(x))||`` as ``l1`` (the paper's
    mean absolute difference) or ``l2`` (the official code's mean squared difference).
    reinit_d: re-initialise the discriminator when its loss on real or fake images falls
    below 1e-5 (the official code's guard against a discriminator that has won).
    width: channels of the first conv stage (32; the paper's DCGAN uses 64, ``--set
    width=64``).  latent_dim: None = 100 for images (the paper's nz), 32 for rows.
    hidden: the MLP's hidden sizes for rows (default [64]).
    """

    w_adv: float = 1.0
    w_con: float = 50.0
    w_enc: float = 1.0
    score: str = "l1"
    reinit_d: bool = True

    image_latent: ClassVar[int] = 100
    table_latent: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self, "w_adv", "w_con", "w_enc")
        check_choice("score", self.score, SCORES)
