"""ALOCC's networks: the reconstructor R (a fully convolutional encoder-decoder) and D."""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.gan import ConvPlan, ConvTrunk, ConvUp, init_dcgan


class Reconstructor(nn.Module):
    """R: image -> image of the same size in [-1, 1].

    A DCGAN encoder (stride-2 convolutions down to at most ``min_size`` px) and its
    mirror of transposed convolutions, with no fully connected bottleneck: R only has to
    refine its input (the paper's encoder-decoder), not to squeeze it through a code.
    """

    def __init__(self, plan: ConvPlan) -> None:
        super().__init__()
        self.down = ConvTrunk(plan, "batch")
        self.up = ConvUp(plan, plan.channels[0], "batch")
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(x))
