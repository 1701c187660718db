"""ALAD: adversarially learned anomaly detection (Zenati et al., ICDM 2018, arXiv 1812.02288).

A BiGAN (encoder E, generator G, joint discriminator D_xz) with two cycle-consistency
discriminators: D_xx tells (x, x) from (x, G(E(x))), D_zz tells (z, z) from (z, E(G(z))).
Spectral normalisation on E and the discriminators.  Per batch, as the official code:
the three discriminators on

    BCE(D_xz(x, E(x)), 1) + BCE(D_xz(G(z), z), 0)
  + BCE(D_xx(x, x), 1) + BCE(D_xx(x, G(E(x))), 0)
  + BCE(D_zz(z, z), 1) + BCE(D_zz(z, E(G(z))), 0)

then G and E on the flipped labels of all three (the adversarial BiGAN terms plus the
cycle terms; the terms on (x, x) and (z, z) do not depend on G or E and are left out of
the logged ``loss_ge``).  Each discriminator's loss involves only its own parameters and the G / E
terms only G's or E's, so one optimiser per side ("d", "ge") gives the same gradients
as the official code's five.  z ~ N(0, I); Adam betas (0.5, 0.999).  E, G, D_xz and the
training step are :class:`reconad.models.gan.BiGAN`'s.

Score (``score="fm"``, the paper's): A(x) = ||f_xx(x, x) - f_xx(x, G(E(x)))||_1, f_xx =
D_xx's last hidden layer; ``l1`` / ``l2`` / ``ce`` as the official code.  Map
|x - G(E(x))| (channel mean).  Table rows: MLPs (the official KDD architecture).

The weights scored are an exponential moving average of the trained ones (decay 0.999,
the official code's, ramped as ``GANConfig.ema_decay`` says), put in place once training
ends.

Deviations: learning rate 1e-3 (the official code: 2e-4 for CIFAR-10, 1e-5 for KDD, with
tens of thousands of steps).  A one-class set of a few hundred images gives a few
hundred steps; at 2e-4, G(E(x)) had not learnt to redraw the normal class by then, and
the score ranked some classes upside down (the test suite's digits, class 1: 0.11; at
1e-3: 0.62; one-class MNIST-10k, class 1: 0.27 on two seeds of three, BENCHMARKS §11,
§21).  D_xx sees
(x, x') concatenated on channels (the official code stacks them along the height);
DCGAN-style conv stacks; the encoder's last layer keeps PyTorch's default initialisation
(see ``gan.ImageEncoder``: with DCGAN's the generator hardly learns for hundreds
of steps); the last epoch is kept (``monitor="none"``; the official code
can early-stop on a validation score).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from reconad.models.alad.config import ALADConfig
from reconad.models.alad.networks import build_dxx, build_dzz
from reconad.models.gan import (
    BiGAN,
    Forward,
    PairDiscriminator,
    bce,
    build_pair_discriminator,
    discriminator_loss,
    sum_abs,
)


class ALAD(BiGAN):
    name = "alad"
    keeps_weight_average = True
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 64, "epochs": 15, "lr": 1e-3, "patience": None}

    config: ALADConfig

    def __init__(self, config: ALADConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or ALADConfig(**kwargs))
        c = self.config
        self.d_xz = build_pair_discriminator(c, c.resolved_joint(), c.dropout, spectral=c.resolved_spectral_norm())
        self.d_xx = build_dxx(c)
        self.d_zz = build_dzz(c)
        self.track_weight_average()

    def pair(self) -> PairDiscriminator:
        return self.d_xz

    def discriminators(self) -> list[torch.nn.Module]:
        return [self.d_xz, self.d_xx] + ([self.d_zz] if self.config.use_dzz else [])

    def forward_pass(self, x: torch.Tensor, z: torch.Tensor) -> Forward:
        """E(x), G(z), G(E(x)) and E(G(z)), computed once per batch for both steps."""
        f = super().forward_pass(x, z)
        return {**f, "x_rec": self.generator(f["z_enc"]), "z_rec": self.encoder(f["x_gen"])}

    def discriminator_losses(self, x: torch.Tensor, z: torch.Tensor, f: Forward) -> dict[str, torch.Tensor]:
        """D_xz sees real and fake pairs in separate batches (its x branch has batch norm);
        D_xx and D_zz have none, so their real and fake pairs go through in one call."""
        xx = self.d_xx(torch.cat([x, x]), torch.cat([x, f["x_rec"].detach()]))[0].chunk(2)
        parts = {**super().discriminator_losses(x, z, f), "d_xx": discriminator_loss(*xx)}
        if self.config.use_dzz:
            zz = self.d_zz(torch.cat([z, z]), torch.cat([z, f["z_rec"].detach()]))[0].chunk(2)
            parts["d_zz"] = discriminator_loss(*zz)
        return parts

    def generator_losses(self, x: torch.Tensor, z: torch.Tensor, f: Forward) -> dict[str, torch.Tensor]:
        """The flipped labels; the terms on (x, x) and (z, z) carry no gradient for G or E and are left out."""
        parts = {**super().generator_losses(x, z, f), "ge_xx": bce(self.d_xx(x, f["x_rec"])[0], 1.0)}
        if self.config.use_dzz:
            parts["ge_zz"] = bce(self.d_zz(z, f["z_rec"])[0], 1.0)
        return parts

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        kind = self.config.score
        x_rec = self.generator(self.encoder(x))
        if kind == "fm":
            scores = sum_abs(self.d_xx(x, x)[1], self.d_xx(x, x_rec)[1])
        elif kind == "l1":
            scores = sum_abs(x, x_rec)
        elif kind == "l2":
            scores = (x - x_rec).flatten(1).norm(2, dim=1)
        else:
            scores = torch.nn.functional.softplus(-self.d_xx(x, x_rec)[0])  # BCE(D_xx(x, x_rec), 1)
        return scores, self.residual(x, x_rec)
