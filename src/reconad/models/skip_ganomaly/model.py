"""Skip-GANomaly (Akcay, Atapour-Abarghouei & Breckon, IJCNN 2019, arXiv 1901.08954).

Generator G: a U-Net (encoder down to at most ``min_size`` px, decoder with a skip
connection from every encoder stage); a DCGAN discriminator D with features f (its last
conv map).  Per batch, as the official code: first G on

    L_G = w_adv·L_adv + w_con·L_con + w_lat·L_lat          (1 / 40 / 1)
    L_adv = BCE(D(x_hat), 1),  L_con = mean |x - x_hat|,  L_lat = mean (f(x) - f(x_hat))^2

then D on BCE(D(x), 1) + BCE(D(x_hat), 0).  Score A(x) = λ·R(x) + (1 - λ)·L(x), λ = 0.9,
with R = mean |x - x_hat| (the paper's L1 contextual score) and L = mean (f(x) - f(x_hat))^2.
Map |x - x_hat| (channel mean).  Adam lr 1e-3 (the engine's ``lr``), betas (0.5, 0.999)
for both networks, batch 64, 15 epochs.

The learning rate is five times the paper's 2e-4.  The paper trains on tens of thousands
of images (thousands of steps in 15 epochs); a one-class set of a few hundred gives a
few hundred steps, and at 2e-4 the U-Net had not learnt to redraw anything by then: its
residual measured ink, not shape, and ranked some classes upside down (one-class
MNIST-10k, class 8: 0.31, BENCHMARKS §11; the test suite's digits, class 1: 0.12).  At
1e-3 the same steps redraw the normal class (digits, class 1: 0.98; four times the
epochs at 2e-4 give the same, 0.97; BENCHMARKS §21).  What the rate does not change:
the skip connections carry any image past the bottleneck, so on one-class
Fashion-MNIST's bags the U-Net redraws bags and the other garments equally well (mean
|x - G(x)| 0.060 against 0.063) and ranks them near chance at either rate (§21).
On one-class MNIST-10k (28 px) the same holds: eights 0.37, twos 0.48, and no score
of the same fit clears 0.55 on both (the official 0.9·mean squared residual + 0.1·feature term:
0.46 and 0.57; the feature term alone 0.52 and 0.59; D's logit 0.74 and 0.51).  Cutting the skips
(``skip_levels``) does not help either (eights 0.23 with the deepest skip alone, 0.42
with none): the bottom map redraws the other digits too (BENCHMARKS §21.8).

Deviations: the official code's score uses the mean *squared* image residual, adds
L_lat to D's loss as well, and min-max scales scores over the test set; we follow the
paper's formulas, keep D's loss the plain GAN loss, and leave the scores unscaled (no
ranking changes).  The U-Net bottleneck is the ``min_size`` map (pix2pix goes down to
1x1); channels are capped at 8·width and the first stage is 32 wide (the paper's 64 with
``width=64``).  The last epoch is kept (``monitor="none"``; the official code picks the
epoch with the best test AUROC).  Images only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.gan import (
    AdversarialModel,
    ImageDiscriminator,
    conv_plan,
    discriminator_loss,
    generator_loss,
    mean_abs,
    mean_squared,
)
from reconad.models.skip_ganomaly.config import SkipGANomalyConfig
from reconad.models.skip_ganomaly.networks import SkipUNet


class SkipGANomaly(AdversarialModel):
    name = "skip_ganomaly"
    input_kinds = ("image",)
    image_only = True
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 64, "epochs": 15, "lr": 1e-3, "patience": None}

    config: SkipGANomalyConfig

    def __init__(self, config: SkipGANomalyConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or SkipGANomalyConfig(**kwargs))
        shape = self.config.input_shape
        assert shape is not None
        plan = conv_plan(shape[0], shape[1:], self.config.width, self.config.min_size)
        self.generator = SkipUNet(plan, self.config.skip_levels)
        self.discriminator = ImageDiscriminator(plan, spectral=self.config.resolved_spectral_norm())

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {
            "g": self.spec(self.generator.parameters(), c.lr_g, c.betas_g),
            "d": self.spec(self.discriminator.parameters(), c.lr_d, c.betas_d),
        }

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        c = self.config
        x = self.inputs(batch)
        x_hat = self.generator(x)
        fake_logits, f_fake = self.discriminator(x_hat)
        _, f_real = self.discriminator(x)
        l_adv = generator_loss(fake_logits)
        l_con = (x - x_hat).abs().mean()
        l_lat = (f_real.detach() - f_fake).pow(2).mean()
        loss_g = c.w_adv * l_adv + c.w_con * l_con + c.w_lat * l_lat
        logs = {"loss_g": ctx.step("g", loss_g)}
        real_logits, _ = self.discriminator(x)
        fake_logits, _ = self.discriminator(x_hat.detach())
        logs["loss_d"] = ctx.step("d", discriminator_loss(real_logits, fake_logits))
        logs.update(l_adv=float(l_adv.detach()), l_con=float(l_con.detach()), l_lat=float(l_lat.detach()))
        return StepOutput(logs["loss_g"], logs)

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam = self.config.score_weight
        x_hat = self.generator(x)
        _, f_real = self.discriminator(x)
        _, f_fake = self.discriminator(x_hat)
        scores = lam * mean_abs(x, x_hat) + (1.0 - lam) * mean_squared(f_real, f_fake)
        return scores, self.residual(x, x_hat)
