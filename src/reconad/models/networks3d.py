"""3-D convolutional encoder and decoder for video clips (the MemAE video variant and its AE baseline).

The layout of MemAE's video experiments (Gong et al., ICCV 2019, and their code): four
3x3x3 convolutions with strides (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), BatchNorm and
LeakyReLU(0.2); channels ``3w, 4w, 8w, 8w`` (``w = 32`` gives the paper's 96, 128, 256,
256).  The decoder mirrors it with transposed convolutions that restore the exact sizes
(odd ones included).  By default the input (B, C, T, H, W) is in [0, 1] and the decoder
ends in a sigmoid (the family's convention); ``output="linear"`` drops the sigmoid, for
frames scaled to [-1, 1] as the official code has them (MemAE's ``input_range="signed"``).
The convolutions before a BatchNorm have no bias: the BatchNorm's mean removes any bias
exactly, in training and in eval mode alike.  :func:`normal_init` is the official code's
initialisation (convolution weights N(0, 0.02), BatchNorm scales N(1, 0.02), shifts 0).
"""

from __future__ import annotations

import torch
from torch import nn

from reconad.errors import ConfigError

STRIDES: tuple[tuple[int, int, int], ...] = ((1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2))
CHANNEL_FACTORS: tuple[int, ...] = (3, 4, 8, 8)
DECODER_OUTPUTS: tuple[str, ...] = ("sigmoid", "linear")


def _out(n: int, stride: int) -> int:
    return (n + 2 - 3) // stride + 1


class Conv3dEncoder(nn.Module):
    """(B, C, T, H, W) -> (B, 8w, t, h, w); records each stage's size for the decoder."""

    def __init__(self, in_channels: int, size: tuple[int, int, int], width: int) -> None:
        super().__init__()
        if min(size) < 1:
            raise ConfigError(f"clip size {size} is too small for the 3-D encoder")
        t, h, w = size
        self.sizes: list[tuple[int, int, int]] = [(t, h, w)]
        self.channels: list[int] = [in_channels]
        layers: list[nn.Module] = []
        c_in = in_channels
        for factor, stride in zip(CHANNEL_FACTORS, STRIDES):
            c_out = width * factor
            layers += [
                nn.Conv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
                nn.BatchNorm3d(c_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            t, h, w = self.sizes[-1]
            self.sizes.append((_out(t, stride[0]), _out(h, stride[1]), _out(w, stride[2])))
            self.channels.append(c_out)
            c_in = c_out
        self.net = nn.Sequential(*layers)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Conv3dDecoder(nn.Module):
    """Mirror of a :class:`Conv3dEncoder`: its feature map -> clip at the input size, in
    [0, 1] (``output="sigmoid"``) or unbounded (``"linear"``)."""

    def __init__(self, encoder: Conv3dEncoder, output: str = "sigmoid") -> None:
        super().__init__()
        if output not in DECODER_OUTPUTS:
            raise ConfigError(f"decoder output must be one of {', '.join(DECODER_OUTPUTS)}, got {output!r}")
        self.sizes = list(reversed(encoder.sizes))
        chans = list(reversed(encoder.channels))
        strides = list(reversed(STRIDES))
        self.ups = nn.ModuleList()
        self.posts = nn.ModuleList()
        for k in range(len(chans) - 1):
            last = k == len(chans) - 2
            self.ups.append(nn.ConvTranspose3d(chans[k], chans[k + 1], 3, stride=strides[k], padding=1, bias=last))
            self.posts.append(
                (nn.Sigmoid() if output == "sigmoid" else nn.Identity())
                if last
                else nn.Sequential(nn.BatchNorm3d(chans[k + 1]), nn.LeakyReLU(0.2, inplace=True))
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z
        for k, (up, post) in enumerate(zip(self.ups, self.posts)):
            x = post(up(x, output_size=self.sizes[k + 1]))
        return x


def normal_init(module: nn.Module) -> None:
    """The official MemAE code's initialisation of every (transposed) convolution and
    BatchNorm below ``module``: weights N(0, 0.02), BatchNorm scales N(1, 0.02) and shifts 0;
    convolution biases keep PyTorch's default, as there (only the last one is not
    cancelled by a BatchNorm)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, (nn.BatchNorm3d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
