"""GANomaly (Akcay, Atapour-Abarghouei & Breckon, ACCV 2018, arXiv 1805.06725).

Generator G = G_E -> G_D -> E: z = G_E(x), x_hat = G_D(z), z_hat = E(x_hat); a DCGAN
discriminator D with features f.  Per batch, as the official code: first D on
BCE(D(x), 1) + BCE(D(x_hat), 0), then G on

    L_G = w_adv·L_adv + w_con·L_con + w_enc·L_enc          (1 / 50 / 1)
    L_adv = mean (f(x) - f(x_hat))^2     (feature matching)
    L_con = mean |x - x_hat|             (contextual, L1)
    L_enc = mean (z - z_hat)^2           (encoder, L2)

Score A(x) = mean |G_E(x) - E(G(x))| (the paper's L1; ``score="l2"`` for the official
code's mean squared difference).  Map |x - x_hat| (channel mean).  Adam lr 2e-4,
betas (0.5, 0.999) for both networks; 15 epochs, batch 64 (the official defaults).

Deviations: the official code keeps the epoch with the best *test* AUROC; we keep the
last epoch (``monitor="none"``), since choosing epochs on test labels is not available
to a user.  The scores are not min-max scaled over the test set (a monotone map that
changes no ranking).  Channels are capped at 8·width and the first stage is 32 wide
(``width=64`` for the paper's size); sizes need not be multiples of 16.  Table rows use
MLPs of ``hidden`` with the same losses (the paper has no table experiments).
"""

from __future__ import annotations

from typing import Any

import torch

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.gan import (
    AdversarialModel,
    discriminator_loss,
    mean_abs,
    mean_squared,
    reinitialise,
)
from reconad.models.ganomaly.config import GANomalyConfig
from reconad.models.ganomaly.networks import EncoderDecoderEncoder, build_discriminator

REINIT_BELOW = 1e-5


class GANomaly(AdversarialModel):
    name = "ganomaly"

    config: GANomalyConfig

    def __init__(self, config: GANomalyConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or GANomalyConfig(**kwargs))
        self.generator = EncoderDecoderEncoder(self.config)
        self.discriminator = build_discriminator(self.config)

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {
            "d": self.spec(self.discriminator.parameters(), c.lr_d, c.betas_d),
            "g": self.spec(self.generator.parameters(), c.lr_g, c.betas_g),
        }

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        c = self.config
        x = self.inputs(batch)
        x_hat, z, z_hat = self.generator(x)
        real_logits, _ = self.discriminator(x)
        fake_logits, _ = self.discriminator(x_hat.detach())
        loss_d = discriminator_loss(real_logits, fake_logits)
        logs = {"loss_d": ctx.step("d", loss_d)}
        self._guard_discriminator(real_logits, fake_logits, ctx)
        _, f_real = self.discriminator(x)
        _, f_fake = self.discriminator(x_hat)
        l_adv = (f_real.detach() - f_fake).pow(2).mean()
        l_con = (x - x_hat).abs().mean()
        l_enc = (z - z_hat).pow(2).mean()
        loss_g = c.w_adv * l_adv + c.w_con * l_con + c.w_enc * l_enc
        logs["loss_g"] = ctx.step("g", loss_g)
        logs.update(l_adv=float(l_adv.detach()), l_con=float(l_con.detach()), l_enc=float(l_enc.detach()))
        return StepOutput(logs["loss_g"], logs)

    @torch.no_grad()
    def _guard_discriminator(self, real_logits: torch.Tensor, fake_logits: torch.Tensor, ctx: StepContext) -> None:
        """Re-initialise D once it separates real from fake perfectly (the official code's rule)."""
        if not self.config.reinit_d:
            return
        real = torch.nn.functional.softplus(-real_logits).mean()  # BCE(real, 1)
        fake = torch.nn.functional.softplus(fake_logits).mean()  # BCE(fake, 0)
        if float(real) < REINIT_BELOW or float(fake) < REINIT_BELOW:
            reinitialise(self.discriminator, dcgan=not self.is_table)
            ctx.counters["d_reinits"] = ctx.counters.get("d_reinits", 0) + 1

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_hat, z, z_hat = self.generator(x)
        latent = mean_abs(z, z_hat) if self.config.score == "l1" else mean_squared(z, z_hat)
        return latent, self.residual(x, x_hat)
