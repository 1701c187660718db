"""Discriminators of images, rows and (x, z) pairs; each returns (logits (B,), features (B, F))."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from reconad.models.gan.convs import ConvPlan, ConvTrunk
from reconad.models.gan.layers import init_dcgan, mlp
from reconad.models.gan.spectral import add_spectral_norm


class ImageDiscriminator(nn.Module):
    """Image -> (logits (B,), features (B, F)); features = the flattened last map of the trunk."""

    def __init__(self, plan: ConvPlan, norm: str = "batch", spectral: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.trunk = ConvTrunk(plan, norm, dropout)
        self.head = nn.Linear(plan.out_features, 1)
        init_dcgan(self)
        if spectral:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(x).flatten(1)
        return self.head(features).squeeze(1), features


class RowDiscriminator(nn.Module):
    """Row (or code, or a concatenated pair) -> (logits (B,), features (B, hidden[-1]))."""

    def __init__(
        self, in_dim: int, hidden: Sequence[int], norm: str = "none", spectral: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.body = mlp([in_dim, *hidden], norm, dropout, last_activation=True)
        self.head = nn.Linear(hidden[-1], 1)
        if spectral:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(features).squeeze(1), features


class PairDiscriminator(nn.Module):
    """BiGAN's joint discriminator D(x, z) -> (logits (B,), features (B, joint)).

    ``x_branch`` maps x to a flat vector of ``x_features`` numbers (a conv trunk and flatten
    for images, an MLP for rows); z goes through an MLP of ``z_hidden``; both are
    concatenated and go through one hidden layer of ``joint`` (the features) to the logit.
    """

    def __init__(
        self,
        x_branch: nn.Module,
        x_features: int,
        latent_dim: int,
        z_hidden: int,
        joint: int,
        dropout: float = 0.0,
        spectral: bool = False,
    ) -> None:
        super().__init__()
        self.x_branch = x_branch
        self.z_branch = mlp([latent_dim, z_hidden], dropout=dropout, last_activation=True)
        self.joint = mlp([x_features + z_hidden, joint], dropout=dropout, last_activation=True)
        self.head = nn.Linear(joint, 1)
        if spectral:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.joint(torch.cat([self.x_branch(x).flatten(1), self.z_branch(z)], dim=1))
        return self.head(features).squeeze(1), features


def image_x_branch(plan: ConvPlan, dropout: float = 0.0) -> nn.Module:
    """The image side of a :class:`PairDiscriminator`: a conv trunk, flattened (plan.out_features)."""
    trunk = nn.Sequential(ConvTrunk(plan, "batch", dropout), nn.Flatten())
    init_dcgan(trunk)
    return trunk
