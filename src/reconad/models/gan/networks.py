"""Encoders and generators of images: x -> z, z -> x and x -> x (U-Net)."""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.gan.convs import ConvPlan, ConvTrunk, ConvUp
from reconad.models.gan.layers import init_dcgan, norm2d
from reconad.models.gan.spectral import add_spectral_norm


class ImageEncoder(nn.Module):
    """Image (B, C, H, W) in [-1, 1] -> code (B, out_dim): :class:`ConvTrunk` and a linear layer
    over the whole last map (DCGAN's final "valid" convolution).

    ``unit_code=True`` keeps PyTorch's default initialisation for that last layer, so the
    codes start at about unit scale.  A BiGAN's encoder needs it: with DCGAN's N(0, 0.02)
    its codes start near 0, the joint discriminator tells E(x) from z ~ N(0, I) by their
    scale alone, and the generator learns next to nothing for hundreds of steps (on the
    test suite's toy bars, ALAD's AUROC after 100 steps: 0.41 with DCGAN's, 1.00 with it).
    """

    def __init__(
        self, plan: ConvPlan, out_dim: int, norm: str = "batch", spectral: bool = False, unit_code: bool = False
    ) -> None:
        super().__init__()
        self.trunk = ConvTrunk(plan, norm)
        self.head = nn.Linear(plan.out_features, out_dim)
        init_dcgan(self)
        if unit_code:
            self.head.reset_parameters()
        if spectral:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1))


class ImageGenerator(nn.Module):
    """Code (B, latent) -> image (B, C, H, W) in [-1, 1]: a linear layer to the smallest map
    (DCGAN's first 4x4 transposed convolution), norm, ReLU, then :class:`ConvUp`."""

    def __init__(self, plan: ConvPlan, latent_dim: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__()
        h, w = plan.out_size
        self.shape = (plan.out_channels, h, w)
        self.project = nn.Linear(latent_dim, plan.out_features, bias=norm == "none")
        self.project_post = nn.Sequential(norm2d(norm, plan.out_channels), nn.ReLU())
        self.up = ConvUp(plan, out_channels, norm)
        init_dcgan(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], *self.shape)
        return self.up(self.project_post(x))


class UNetGenerator(nn.Module):
    """Image -> image of the same size: a :class:`ConvTrunk` down to at most ``min_size`` px
    and a :class:`ConvUp` whose stages also take the encoder map of the same size (skip
    connections, as the U-Net generator of pix2pix and Skip-GANomaly)."""

    def __init__(self, plan: ConvPlan, norm: str = "batch") -> None:
        super().__init__()
        self.down = ConvTrunk(plan, norm)
        self.up = ConvUp(plan, plan.channels[0], norm, skip=True)
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.down.stages(x)
        return self.up(stages[-1], stages[:-1])
