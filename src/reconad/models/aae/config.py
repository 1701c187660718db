"""Settings of the constrained adversarial autoencoder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reconad.engine.config import int_list
from reconad.errors import ConfigError
from reconad.models.gan import NORMS, GANConfig, check_choice, check_weights

SCORES = ("l1", "l2")


@dataclass
class AAEConfig(GANConfig):
    """Constrained AAE settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    w_adv: weight of the encoder's adversarial term (fool the latent discriminator into
    taking E(x) for a draw of the prior N(0, I)); 1.
    w_consistency: weight of the latent consistency term, the mean squared difference
    of E(x) and E(Dec(E(x))); 1 (0 gives the plain adversarial autoencoder).
    score: the image / row score, the mean ``l1`` residual |x - x_hat| (the mean of the
    map) or the mean ``l2`` squared residual.
    disc_hidden: hidden layers of the latent discriminator (default [256, 256] for
    images, [64, 64] for rows).
    norm: normalisation in the image encoder and decoder, ``layer`` (default), ``batch``
    or ``none``.  The consistency term runs the encoder on reconstructions as well as on
    real images; with batch norm its running statistics then mix the two kinds, and at
    test time it encodes neither well (MNIST-10k class 0, one-class AUROC: 0.48 with
    ``batch``, 0.93 with ``layer``; ``none`` does not train, 0.40).
    latent_dim: None = 128 for images, 32 for rows.  hidden: the MLP's hidden sizes for
    rows (default [64]).  width: 32.
    lr_g, betas_g: the autoencoder's (encoder and decoder, both of its phases); lr_d,
    betas_d: the latent discriminator's.
    """

    w_adv: float = 1.0
    w_consistency: float = 1.0
    score: str = "l1"
    disc_hidden: list[int] | None = None
    norm: str = "layer"

    image_latent: ClassVar[int] = 128
    table_latent: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self, "w_adv", "w_consistency")
        check_choice("score", self.score, SCORES)
        check_choice("norm", self.norm, NORMS)
        if self.disc_hidden is not None:
            self.disc_hidden = int_list("disc_hidden", self.disc_hidden)
            if not self.disc_hidden or min(self.disc_hidden) < 1:
                raise ConfigError(f"disc_hidden must be one or more sizes >= 1, got {self.disc_hidden}")

    def resolved_disc_hidden(self) -> list[int]:
        if self.disc_hidden is not None:
            return list(self.disc_hidden)
        return [64, 64] if self.is_table else [256, 256]
