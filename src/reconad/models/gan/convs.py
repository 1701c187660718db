"""Halving conv stacks: their geometry (:class:`ConvPlan`), the way down and the way up."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from reconad.errors import ConfigError
from reconad.models.gan.layers import leaky, norm2d


@dataclass(frozen=True)
class ConvPlan:
    """Map sizes and channels of each stage of a halving conv stack (index 0 = the input)."""

    sizes: tuple[tuple[int, int], ...]
    channels: tuple[int, ...]

    @property
    def stages(self) -> int:
        return len(self.sizes) - 1

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    @property
    def out_size(self) -> tuple[int, int]:
        return self.sizes[-1]

    @property
    def out_features(self) -> int:
        h, w = self.out_size
        return self.out_channels * h * w


def conv_plan(in_channels: int, size: Sequence[int], width: int, min_size: int = 4, min_stages: int = 0) -> ConvPlan:
    """Stride-2 4x4 stages (padding 1) until the longer side is at most ``min_size`` and
    there are at least ``min_stages`` stages (while the shorter side is at least 4 px)."""
    h, w = int(size[0]), int(size[1])
    sizes, channels = [(h, w)], [in_channels]
    i = 0
    while (max(h, w) > min_size or i < min_stages) and min(h, w) >= 4:
        h, w = h // 2, w // 2
        sizes.append((h, w))
        channels.append(width * min(2**i, 8))
        i += 1
    if len(sizes) == 1:
        raise ConfigError(f"image of size {h}x{w} is too small for the conv networks (at least 8 px)")
    return ConvPlan(tuple(sizes), tuple(channels))


class ConvTrunk(nn.Module):
    """The downsampling stack of DCGAN's discriminator / encoder: conv 4x4 s2 -> norm -> LeakyReLU.

    The first stage has no normalisation (as in DCGAN).  ``forward`` gives the last map;
    ``stages`` every stage's output (U-Net skips).
    """

    def __init__(self, plan: ConvPlan, norm: str = "batch", dropout: float = 0.0, first_norm: bool = False) -> None:
        super().__init__()
        self.plan = plan
        self.blocks = nn.ModuleList()
        for k in range(plan.stages):
            c_in, c_out = plan.channels[k], plan.channels[k + 1]
            use_norm = norm != "none" and (k > 0 or first_norm)
            block: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not use_norm),
                norm2d(norm if use_norm else "none", c_out),
                leaky(),
            ]
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            self.blocks.append(nn.Sequential(*block))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class ConvUp(nn.Module):
    """The upsampling stack of DCGAN's generator, mirroring a :class:`ConvPlan`:
    transposed conv 4x4 s2 -> norm -> ReLU, the last stage to ``out_channels`` and tanh.

    ``skip=True`` makes each stage but the first take its input concatenated with the
    encoder map of the same size (U-Net)."""

    def __init__(self, plan: ConvPlan, out_channels: int, norm: str = "batch", skip: bool = False) -> None:
        super().__init__()
        self.sizes = list(reversed(plan.sizes))
        chans = list(reversed(plan.channels))
        chans[-1] = out_channels
        self.skip = skip
        self.ups = nn.ModuleList()
        self.posts = nn.ModuleList()
        for k in range(plan.stages):
            last = k == plan.stages - 1
            c_in = chans[k] * (2 if skip and k > 0 else 1)
            use_norm = norm != "none" and not last
            self.ups.append(nn.ConvTranspose2d(c_in, chans[k + 1], 4, stride=2, padding=1, bias=not use_norm))
            self.posts.append(nn.Tanh() if last else nn.Sequential(norm2d(norm, chans[k + 1]), nn.ReLU()))

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """``skips``: the encoder's stage outputs from the input side (U-Net), else empty."""
        for k, (up, post) in enumerate(zip(self.ups, self.posts)):
            if self.skip and k > 0:
                x = torch.cat([x, skips[len(skips) - k]], dim=1)
            x = post(up(x, output_size=self.sizes[k + 1]))
        return x
