"""f-AnoGAN (Schlegl et al., Medical Image Analysis 54, 2019).

Two phases in one run, split by epochs (``encoder_share``):

1. a WGAN-GP on normal images: the critic C (DCGAN trunk with layer norm, features f =
   its last map) steps every batch on C(G(z)) - C(x) + 10·GP, the generator every
   ``n_critic`` = 5th on -C(G(z)); z ~ N(0, I), 128 numbers; Adam lr 1e-4, betas (0, 0.9);
2. an encoder E: x -> z with G and C frozen (eval mode, no updates), trained on
   ``izif``: (1/n)·||x - G(E(x))||^2 + κ·(1/n_d)·||f(x) - f(G(E(x)))||^2 (κ = 1),
   ``izi``: the image term alone, or ``ziz``: (1/d)·||z - E(G(z))||^2 on sampled z.

Score (every training mode, as the paper): A(x) = (1/n)·||x - G(E(x))||^2 +
κ·(1/n_d)·||f(x) - f(G(E(x)))||^2; map |x - G(E(x))| (channel mean).

Deviations: DCGAN convolution stacks instead of the paper's residual blocks (32 channels
wide first; the paper's networks are wider); the encoder trains with Adam at the
engine's learning rate (the official code: RMSProp, 5e-5); the phase split is by
epochs of one run (the paper trains the WGAN first and the encoder afterwards, for
many more iterations); batches of 16 for 70 epochs rather than the usual 64, so that sets
of a few hundred images give the generator a few hundred steps (at 64 for 25 epochs, 720
images gave it 36 and the scores stayed at chance: BENCHMARKS.md §11; on sets of many
thousands, fewer epochs do).  Images only.
"""

from __future__ import annotations

from typing import Any

import torch

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.fanogan.config import FAnoGANConfig
from reconad.models.gan import (
    AdversarialModel,
    ImageDiscriminator,
    ImageEncoder,
    ImageGenerator,
    conv_plan,
    gradient_penalty,
    mean_squared,
    wasserstein_critic_loss,
)


class FAnoGAN(AdversarialModel):
    name = "fanogan"
    input_kinds = ("image",)
    image_only = True
    train_defaults = {"batch_size": 16, "epochs": 70, "lr": 1e-4, "patience": None}

    config: FAnoGANConfig

    def __init__(self, config: FAnoGANConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or FAnoGANConfig(**kwargs))
        shape = self.config.input_shape
        assert shape is not None
        latent = self.config.resolved_latent()
        plan = conv_plan(shape[0], shape[1:], self.config.width, self.config.min_size)
        self.generator = ImageGenerator(plan, latent, shape[0])
        self.critic = ImageDiscriminator(plan, norm="layer", spectral=self.config.resolved_spectral_norm())
        self.encoder = ImageEncoder(plan, latent)

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        return {
            "d": self.spec(self.critic.parameters(), c.lr_d, c.betas_d),
            "g": self.spec(self.generator.parameters(), c.lr_g, c.betas_g),
            "e": self.spec(self.encoder.parameters(), c.lr_e, c.betas_e),
        }

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        x = self.inputs(batch)
        if ctx.epoch < self.config.gan_epochs(ctx.epochs):
            return self._gan_step(x, ctx)
        return self._encoder_step(x, ctx)

    def _critic(self, images: torch.Tensor) -> torch.Tensor:
        return self.critic(images)[0]

    def _gan_step(self, x: torch.Tensor, ctx: StepContext) -> StepOutput:
        c = self.config
        fake = self.generator(self.latent_noise(x.shape[0], x)).detach()
        gp = gradient_penalty(self._critic, x, fake)
        loss_d = wasserstein_critic_loss(self._critic(x), self._critic(fake)) + c.gp_weight * gp
        logs = {"loss_d": ctx.step("d", loss_d), "gp": float(gp.detach())}
        ctx.counters["critic_steps"] = ctx.counters.get("critic_steps", 0) + 1
        if ctx.counters["critic_steps"] % c.n_critic == 0:
            loss_g = -self._critic(self.generator(self.latent_noise(x.shape[0], x))).mean()
            logs["loss_g"] = ctx.step("g", loss_g)
        return StepOutput(logs["loss_d"], logs)

    def _encoder_step(self, x: torch.Tensor, ctx: StepContext) -> StepOutput:
        for frozen in (self.generator, self.critic):  # batch-norm statistics stay those of the GAN phase,
            frozen.eval()  # and no gradients are computed for them
            frozen.requires_grad_(False)
        if self.config.training == "ziz":
            z = self.latent_noise(x.shape[0], x)
            with torch.no_grad():
                fake = self.generator(z)
            loss = mean_squared(z, self.encoder(fake)).mean()
        else:
            loss = self._izif(x, features=self.config.training == "izif").mean()
        logs = {"loss_e": ctx.step("e", loss)}
        return StepOutput(logs["loss_e"], logs)

    def _izif(self, x: torch.Tensor, features: bool = True) -> torch.Tensor:
        """Per-sample (1/n)·||x - G(E(x))||^2 (+ κ·(1/n_d)·||f(x) - f(G(E(x)))||^2)."""
        x_hat = self.generator(self.encoder(x))
        loss = mean_squared(x, x_hat)
        if features:
            loss = loss + self.config.kappa * mean_squared(self.critic(x)[1], self.critic(x_hat)[1])
        return loss

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x_hat = self.generator(self.encoder(x))
        scores = mean_squared(x, x_hat) + self.config.kappa * mean_squared(self.critic(x)[1], self.critic(x_hat)[1])
        return scores, self.residual(x, x_hat)
