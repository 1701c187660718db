"""What EGBAD and ALAD share: a BiGAN (encoder E: x -> z, generator G: z -> x, joint
discriminator D(x, z)) and its training step.

Per batch: E(x) and G(z), z ~ N(0, I), computed once for both updates; the
discriminators on their losses (D(x, z) on BCE(D(x, E(x)), 1) + BCE(D(G(z), z), 0), plus
whatever other discriminators a model keeps), then G and E on the flipped labels (one
optimiser "ge": each term involves only one of them, so the gradients are those of two
separate optimisers).  Spectrally normalised weights are computed once per update
(``parametrize.cached``).  Every loss term is logged as ``loss_<part>`` beside the sums
``loss_d`` and ``loss_ge``; the weight average (``ema_decay``) is updated after each step.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrize import cached

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.gan.base import AdversarialModel
from reconad.models.gan.builders import build_encoder, build_generator, image_plan
from reconad.models.gan.config import GANConfig
from reconad.models.gan.discriminators import PairDiscriminator, image_x_branch
from reconad.models.gan.layers import mlp
from reconad.models.gan.losses import bce, discriminator_loss

#: tensors of one batch's forward pass by name (``z_enc`` = E(x), ``x_gen`` = G(z), ...)
Forward = dict[str, torch.Tensor]


def build_pair_discriminator(cfg: GANConfig, joint: int, dropout: float, spectral: bool = False) -> PairDiscriminator:
    """BiGAN's D(x, z): a conv trunk (images) or a 128-unit layer with batch norm (rows) for
    x, a 512- (images) or 128-unit (rows) layer for z, and a ``joint`` hidden layer."""
    latent = cfg.resolved_latent()
    if cfg.is_table:
        assert cfg.input_shape is not None
        x_branch: nn.Module = mlp([cfg.input_shape[0], 128], norm="batch", last_activation=True)
        return PairDiscriminator(x_branch, 128, latent, 128, joint, dropout, spectral)
    plan = image_plan(cfg)
    return PairDiscriminator(image_x_branch(plan, dropout), plan.out_features, latent, 512, joint, dropout, spectral)


def _total(parts: dict[str, torch.Tensor]) -> torch.Tensor:
    """The sum of the loss terms, in their order."""
    terms = iter(parts.values())
    total = next(terms)
    for term in terms:
        total = total + term
    return total


class BiGAN(AdversarialModel):
    """Base of the BiGAN models: builds E and G (E spectrally normalised with
    ``spectral_norm``); a subclass builds its discriminators after ``super().__init__``
    (so the RNG draws of the initialisation keep their order), then calls
    ``track_weight_average``, and names its joint discriminator in :meth:`pair`."""

    def __init__(self, config: GANConfig) -> None:
        super().__init__(config)
        self.encoder = build_encoder(self.config, spectral=self.config.resolved_spectral_norm())
        self.generator = build_generator(self.config)

    def pair(self) -> PairDiscriminator:
        """The joint discriminator D(x, z)."""
        raise NotImplementedError

    def discriminators(self) -> list[nn.Module]:
        """Every discriminator the "d" optimiser trains."""
        return [self.pair()]

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        d_params = [p for d in self.discriminators() for p in d.parameters()]
        return {
            "d": self.spec(d_params, c.lr_d, c.betas_d),
            "ge": self.spec([*self.generator.parameters(), *self.encoder.parameters()], c.lr_g, c.betas_g),
        }

    # ---------------------------------------------------------------- training
    def forward_pass(self, x: torch.Tensor, z: torch.Tensor) -> Forward:
        """E(x) and G(z), computed once per batch for both updates."""
        return {"z_enc": self.encoder(x), "x_gen": self.generator(z)}

    def discriminator_losses(self, x: torch.Tensor, z: torch.Tensor, f: Forward) -> dict[str, torch.Tensor]:
        """The discriminators' loss terms (of detached E and G outputs): here D(x, z)'s."""
        real, fake = self.pair()(x, f["z_enc"].detach())[0], self.pair()(f["x_gen"].detach(), z)[0]
        return {"d_xz": discriminator_loss(real, fake)}

    def generator_losses(self, x: torch.Tensor, z: torch.Tensor, f: Forward) -> dict[str, torch.Tensor]:
        """G's and E's loss terms: D(x, z)'s flipped labels (E: real pairs -> fake, G: fakes -> real)."""
        real, fake = self.pair()(x, f["z_enc"])[0], self.pair()(f["x_gen"], z)[0]
        return {"e": bce(real, 0.0), "g": bce(fake, 1.0)}

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        x = self.inputs(batch)
        z = self.latent_noise(x.shape[0], x)
        with cached():  # each spectrally normalised weight is computed once per step, not per call
            f = self.forward_pass(x, z)
            d_parts = self.discriminator_losses(x, z, f)
        logs = {"loss_d": ctx.step("d", _total(d_parts))}
        with cached():  # again after D's update
            ge_parts = self.generator_losses(x, z, f)
        logs["loss_ge"] = ctx.step("ge", _total(ge_parts))
        self.update_weight_average()
        logs.update({f"loss_{k}": float(v.detach()) for k, v in {**d_parts, **ge_parts}.items()})
        return StepOutput(logs["loss_ge"], logs)
