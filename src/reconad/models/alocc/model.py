"""ALOCC: adversarially learned one-class classifier (Sabokrou, Khalooei, Fathy & Adeli,
CVPR 2018, arXiv 1802.09088).

Two networks: a reconstructor R (a fully convolutional encoder-decoder) and a
discriminator D (a CNN giving the probability that its input is a real target image).
R sees its training images with Gaussian noise, X~ = X + eta, eta ~ N(0, sigma^2 I)
(sigma = 0.155 in [0, 1] image units, the official code's; the noisy image is clipped to
the valid range).  Per batch, D once, then R ``r_steps`` times (2):

    L_D = BCE(D(X), 1) + BCE(D(R(X~)), 0)                    (D tells X from R(X~))
    L_R = BCE(D(R(X~)), 1) + lambda·||X - R(X~)||^2          (R fools D, reconstructs)

with lambda = 0.4 (the paper's) and ||.||^2 the squared L2 norm of each image (summed
over its pixels), averaged over the batch.  Score (default ``score="rec"``): R's error
||x - R(x)||^2 (mean over the pixels).  ``score="d_rx"`` gives the paper's detector
1 - D(R(x)) (higher = more anomalous; the paper thresholds D(R(x))), ``score="d_x"``
1 - D(x), the paper's discriminator-only baseline.  Map |x - R(x)| (channel mean,
[0, 1] units).

Official defaults: RMSProp at 0.002 for both networks, batch 128, 40 epochs, R updated
twice per D update, widths 16 (D) / 32 (R's encoder), 5x5 kernels, batch norm.

Deviations: Adam at the official 0.002 with DCGAN's betas (0.5, 0.999) (the engine has
no RMSProp); R's reconstruction term is the paper's squared error, not the official
code's sigmoid cross-entropy of weight 0.2; D uses layer instead of batch normalisation
(``d_norm``; its output is the score, and batch statistics let it tell real from
reconstructed batches apart by their statistics alone); 4x4 stride-2 DCGAN stages down
to ``min_size`` (so 28-256 px work), 32 channels in the first stage, capped at 8·width.
The paper stops training once R reconstructs well enough; we train the given number of
epochs and keep the last (``monitor="none"``).  The default score is R's error, not D's
verdict: D learns to call R's outputs fake, so its verdict on R(x) ranks the normal
images as anomalous once it wins, and on one-class MNIST-10k (BENCHMARKS §13.1) it
changed sign with the epoch count (class 0: AUROC 0.90 after 3 epochs, 0.12 after 10)
and ranked 6 of the 10 classes below chance at the official 40 (BENCHMARKS §21 for the
fix).  Images only.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.alocc.config import ALOCCConfig
from reconad.models.alocc.networks import Reconstructor
from reconad.models.gan import (
    AdversarialModel,
    ImageDiscriminator,
    discriminator_loss,
    generator_loss,
    image_plan,
    mean_squared,
)


class ALOCC(AdversarialModel):
    name = "alocc"
    input_kinds = ("image",)
    image_only = True
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 128, "epochs": 40, "lr": 2e-3, "patience": None}

    config: ALOCCConfig

    def __init__(self, config: ALOCCConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or ALOCCConfig(**kwargs))
        plan = image_plan(self.config)
        self.reconstructor = Reconstructor(plan)
        self.discriminator = ImageDiscriminator(
            plan, norm=self.config.d_norm, spectral=self.config.resolved_spectral_norm()
        )

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {
            "d": self.spec(self.discriminator.parameters(), c.lr_d, c.betas_d),
            "r": self.spec(self.reconstructor.parameters(), c.lr_g, c.betas_g),
        }

    def noisy(self, x: torch.Tensor) -> torch.Tensor:
        """X~ = X + eta, eta ~ N(0, sigma^2) in [0, 1] units (2·sigma on the [-1, 1] scale), clipped."""
        eta = torch.randn_like(x) * (2.0 * self.config.noise_std)
        return (x + eta).clamp(-1.0, 1.0)

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        c = self.config
        x = self.inputs(batch)
        x_tilde = self.noisy(x)
        real_logits, _ = self.discriminator(x)
        fake_logits, _ = self.discriminator(self.reconstructor(x_tilde).detach())
        logs = {"loss_d": ctx.step("d", discriminator_loss(real_logits, fake_logits))}
        for _ in range(c.r_steps):
            x_hat = self.reconstructor(x_tilde)
            fake_logits, _ = self.discriminator(x_hat)
            l_adv = generator_loss(fake_logits)
            l_rec = (x - x_hat).pow(2).flatten(1).sum(1).mean()
            logs["loss_r"] = ctx.step("r", l_adv + c.w_rec * l_rec)
        logs.update(l_adv=float(l_adv.detach()), l_rec=float(l_rec.detach()))
        return StepOutput(logs["loss_r"], logs)

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_hat = self.reconstructor(x)
        if self.config.score == "rec":
            return mean_squared(x, x_hat), self.residual(x, x_hat)
        logits, _ = self.discriminator(x_hat if self.config.score == "d_rx" else x)
        return 1.0 - torch.sigmoid(logits), self.residual(x, x_hat)
