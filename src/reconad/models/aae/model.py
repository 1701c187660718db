"""Constrained adversarial autoencoder (Chen & Konukoglu, MIDL 2018, arXiv 1806.04972,
"Unsupervised Detection of Lesions in Brain MRI using constrained adversarial
auto-encoders").

An autoencoder x -> z = E(x) -> x_hat = Dec(z) whose codes are pushed towards the prior
N(0, I) by a latent discriminator D_z (the adversarial autoencoder of Makhzani et al.),
plus the paper's latent consistency constraint: the reconstruction must encode back to
the same code, so that an image with a lesion maps close to its healthy counterpart.
Per batch, in the adversarial autoencoder's three phases:

    reconstruction  E, Dec: mean (x - x_hat)^2 + w_consistency·mean (E(x) - E(x_hat))^2
    regularisation  D_z:    BCE(D_z(z_p), 1) + BCE(D_z(E(x)), 0),     z_p ~ N(0, I)
                    E:      w_adv·BCE(D_z(E(x)), 1)

(means over elements and the batch; w_consistency = w_adv = 1; the consistency term
trains both E and Dec).  Score: the mean residual |x - x_hat| (the mean of the map;
``score="l2"`` for the mean squared residual); map |x - x_hat| (channel mean), the
paper's residual image.

Defaults: Adam lr 2e-4, betas (0.5, 0.999) for the three optimisers; batch 64, 15
epochs (the family's DCGAN defaults); latent 128 numbers for images, 32 for rows.

Deviations and choices: the paper's networks and optimiser settings are not reproduced
(it trains on 2-D MRI slices); we use this library's DCGAN-style conv encoder / decoder
(stride-2 4x4 stages to ``min_size``, channels capped at 8·width) and an MLP latent
discriminator.  Those networks use layer norm, not DCGAN's batch norm: the consistency
term encodes reconstructions too, and batch norm's running statistics would mix them with
real images (``AAEConfig.norm``).  The constraint is the squared code difference averaged
over the code's elements, the same per-element scale as the reconstruction term: as a
per-sample L2 norm it outweighed the per-pixel reconstruction error and the autoencoder learned to
reconstruct nothing.  The adversarial terms are the non-saturating GAN losses.  The
encoder's last layer keeps PyTorch's initialisation so that codes start at about the
prior's scale.  The last epoch is kept (``monitor="none"``).  Table rows: MLPs of
``hidden`` with the same losses.
"""

from __future__ import annotations

from typing import Any

import torch

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.aae.config import AAEConfig
from reconad.models.gan import (
    AdversarialModel,
    RowDiscriminator,
    build_encoder,
    build_generator,
    discriminator_loss,
    generator_loss,
    mean_abs,
    mean_squared,
)


class AAE(AdversarialModel):
    name = "aae"

    config: AAEConfig

    def __init__(self, config: AAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or AAEConfig(**kwargs))
        c = self.config
        self.encoder = build_encoder(c, norm=c.norm)
        self.decoder = build_generator(c, norm=c.norm)
        self.latent_discriminator = RowDiscriminator(
            c.resolved_latent(), c.resolved_disc_hidden(), spectral=c.resolved_spectral_norm()
        )

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {
            "ae": self.spec([*self.encoder.parameters(), *self.decoder.parameters()], c.lr_g, c.betas_g),
            "d": self.spec(self.latent_discriminator.parameters(), c.lr_d, c.betas_d),
            "e": self.spec(self.encoder.parameters(), c.lr_g, c.betas_g),
        }

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        c = self.config
        x = self.inputs(batch)
        z = self.encoder(x)
        x_hat = self.decoder(z)
        l_rec = (x - x_hat).pow(2).mean()
        l_cons = self.consistency(z, self.encoder(x_hat))
        logs = {"loss_ae": ctx.step("ae", l_rec + c.w_consistency * l_cons)}
        z = self.encoder(x)
        prior_logits, _ = self.latent_discriminator(self.latent_noise(x.shape[0], x))
        code_logits, _ = self.latent_discriminator(z.detach())
        logs["loss_d"] = ctx.step("d", discriminator_loss(prior_logits, code_logits))
        code_logits, _ = self.latent_discriminator(z)
        logs["loss_e"] = ctx.step("e", c.w_adv * generator_loss(code_logits))
        logs.update(l_rec=float(l_rec.detach()), l_cons=float(l_cons.detach()))
        return StepOutput(logs["loss_ae"], logs)

    def consistency(self, z: torch.Tensor, z_again: torch.Tensor) -> torch.Tensor:
        """mean (E(x) - E(Dec(E(x))))^2 over the code's elements and the batch."""
        return (z - z_again).pow(2).mean()

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_hat = self.decoder(self.encoder(x))
        scores = mean_abs(x, x_hat) if self.config.score == "l1" else mean_squared(x, x_hat)
        return scores, self.residual(x, x_hat)
