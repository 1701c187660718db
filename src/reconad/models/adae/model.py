"""ADAE: anomaly detection with adversarial dual autoencoders (Vu, Ueta, Hashimoto, Maeno,
Pranata & Shen, arXiv 1902.06924, 2019).

Generator and discriminator are both autoencoders of the same shape, G and D.  D learns
to reconstruct real images but not G's reconstructions; G learns to reconstruct its
input so that D reconstructs the result too.  Per batch, G first, then D:

    L_G = w·||X - G(X)||_1 + ||G(X) - D(G(X))||_1
    L_D = ||X - D(X)||_1 - k·||G(X) - D(G(X))||_1      (G(X) a constant here)

(norms as means over the elements and the batch; w = ``w_rec``, k = ``w_fake``).  The
paper's score is ||x - D(G(x))||_2, here the mean squared residual per element
(``score="l2"``; ``"l1"`` the mean absolute one); ``score="g"`` is G's own residual
||x - G(x)||^2, map |x - G(x)| (channel mean, [0, 1] units).

Defaults: Adam with betas (0.5, 0.999) for both, learning rate 1e-3 (the engine's
``lr``) for G and D, batch 64, 15 epochs (the family's DCGAN defaults).  D at a fifth
of G's rate (the old default) never learnt to reconstruct in the few hundred steps of a
one-class set, and the score followed ink (BENCHMARKS §13.1, §21).

Images: score ``g``, w = 10 and a 32-number code between encoder and decoder
(``image_code``), not the paper's ||x - D(G(x))||, w = 1 and a fully
convolutional map.  In the paper's form, on one-class MNIST-10k, G escapes D by drawing
one saturated image for every input, D collapses to one output, and the score is the
distance of x to a fixed image: a function of the ink (BENCHMARKS §21.7; the reasons,
each measured, are in :class:`ADAEConfig`).  ``score="l2", w_rec=1, image_code=False``
is the paper's form.  Rows keep the paper's score and weight.

Other deviations and choices: k = 0.5 instead of the paper's 1 (see
``ADAEConfig.w_fake``: with 1, D is free to reconstruct nothing once G is good).  The
paper gives no learning rates we could check.  Each image autoencoder is a DCGAN-style
stack (stride-2 4x4 stages to ``min_size``, channels capped at 8·width, 32 in the first
stage, layer normalisation: see ``ADAEConfig.norm``) rather than the paper's exact
layers.  The last epoch is kept (``monitor="none"``).  Table rows: MLP autoencoders of
``hidden`` with the same losses (the paper has none).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.adae.config import ADAEConfig
from reconad.models.adae.networks import Autoencoder
from reconad.models.gan import AdversarialModel, mean_abs, mean_squared


class ADAE(AdversarialModel):
    name = "adae"
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 64, "epochs": 15, "lr": 1e-3, "patience": None}

    config: ADAEConfig

    def __init__(self, config: ADAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or ADAEConfig(**kwargs))
        self.generator = Autoencoder(self.config)
        self.discriminator = Autoencoder(self.config)

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {
            "g": self.spec(self.generator.parameters(), c.lr_g, c.betas_g),
            "d": self.spec(self.discriminator.parameters(), c.lr_d, c.betas_d),
        }

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        x = self.inputs(batch)
        g_x = self.generator(x)
        l_rec = (x - g_x).abs().mean()
        l_fool = (g_x - self.discriminator(g_x)).abs().mean()
        logs = {"loss_g": ctx.step("g", self.config.resolved_w_rec() * l_rec + l_fool)}
        with torch.no_grad():
            fake = self.generator(x)
        d_real = (x - self.discriminator(x)).abs().mean()
        d_fake = (fake - self.discriminator(fake)).abs().mean()
        logs["loss_d"] = ctx.step("d", d_real - self.config.w_fake * d_fake)
        logs.update(l_rec=float(l_rec.detach()), d_real=float(d_real.detach()), d_fake=float(d_fake.detach()))
        return StepOutput(logs["loss_g"], logs)

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        score = self.config.resolved_score()
        x_hat = self.generator(x)
        if score == "g":
            return mean_squared(x, x_hat), self.residual(x, x_hat)
        x_hat = self.discriminator(x_hat)
        scores = mean_squared(x, x_hat) if score == "l2" else mean_abs(x, x_hat)
        return scores, self.residual(x, x_hat)
