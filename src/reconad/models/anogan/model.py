"""AnoGAN (Schlegl et al., IPMI 2017, arXiv 1703.05921).

A DCGAN (generator G: z ~ N(0, I) -> image, discriminator D with features f) trained on
normal images: per batch D on BCE(D(x), 1) + BCE(D(G(z)), 0), then G on the
non-saturating BCE(D(G(z)), 1); Adam lr 2e-4, betas (0.5, 0.999).

At test time each image is mapped to the latent space by gradient descent on z
(Gamma = ``search_steps`` Adam steps from a seeded z_0) minimising

    L(z) = (1 - λ)·R(z) + λ·D(z),   R = ||x - G(z)||_1,   D = ||f(x) - f(G(z))||_1,  λ = 0.1

(D is the paper's feature-matching "discrimination loss").  Score A(x) = L(z*), the
paper's (1 - λ)·R(x) + λ·D(x); map |x - G(z*)| (channel mean).

The search makes scoring an optimisation, not one forward pass: ``export_blocker`` says
so and ``reconad export`` refuses the model.  Deviations: z ~ N(0, I) rather than
DCGAN's uniform prior, and the search's step size (``search_lr``) is our choice (the
paper names the optimiser, not its rate).  Channels are capped at 8·width, first stage
32 wide (DCGAN's 64 with ``width=64``).  Images only.
"""

from __future__ import annotations

from typing import Any

import torch

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.anogan.config import AnoGANConfig
from reconad.models.anogan.search import search_latent
from reconad.models.gan import (
    AdversarialModel,
    ImageDiscriminator,
    ImageGenerator,
    conv_plan,
    discriminator_loss,
    generator_loss,
)


class AnoGAN(AdversarialModel):
    name = "anogan"
    input_kinds = ("image",)
    image_only = True

    config: AnoGANConfig

    def __init__(self, config: AnoGANConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or AnoGANConfig(**kwargs))
        shape = self.config.input_shape
        assert shape is not None
        plan = conv_plan(shape[0], shape[1:], self.config.width, self.config.min_size)
        self.generator = ImageGenerator(plan, self.config.resolved_latent(), shape[0])
        self.discriminator = ImageDiscriminator(plan, spectral=self.config.resolved_spectral_norm())

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {
            "d": self.spec(self.discriminator.parameters(), c.lr_d, c.betas_d),
            "g": self.spec(self.generator.parameters(), c.lr_g, c.betas_g),
        }

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        x = self.inputs(batch)
        fake = self.generator(self.latent_noise(x.shape[0], x))
        real_logits, _ = self.discriminator(x)
        fake_logits, _ = self.discriminator(fake.detach())
        logs = {"loss_d": ctx.step("d", discriminator_loss(real_logits, fake_logits))}
        g_logits, _ = self.discriminator(fake)
        logs["loss_g"] = ctx.step("g", generator_loss(g_logits))
        return StepOutput(logs["loss_g"], logs)

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> dict[str, float]:
        """D's belief that held-out normals are real (the latent search is too slow to run each epoch)."""
        logits, _ = self.discriminator(self.inputs(batch))
        return {"d_real": float(torch.sigmoid(logits).mean())}

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.config
        scores, g = search_latent(
            self.generator,
            self.discriminator,
            x,
            c.resolved_latent(),
            c.search_steps,
            c.search_lr,
            c.lam,
            c.search_seed,
        )
        return scores, self.residual(x, g)

    def export_blocker(self) -> str | None:
        return (
            "AnoGAN scores an image by a gradient-descent search over the latent space "
            f"({self.config.search_steps} steps per image), not by one forward pass, so its scoring "
            "cannot be exported as one graph; export an encoder-based model (fanogan, egbad, alad, ganomaly)"
        )
