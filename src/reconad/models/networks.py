"""Encoders and decoders shared by the reconstruction models (AE, VAE, MemAE, ESAD).

Two families, picked by the input shape:

* images ``[C, H, W]`` (any size >= 8, e.g. 28, 32, 64): a stack of stride-2
  4x4 convolutions (BatchNorm, LeakyReLU) halving the map until it is at most
  ``min_size`` wide, channels ``width, 2·width, …`` (capped at ``8·width``); the
  decoder mirrors it with transposed convolutions that restore the exact sizes
  (odd ones included) and ends in a sigmoid, since images are in [0, 1].
* table rows ``[D]``: an MLP ``D → hidden… → latent`` and its mirror, LeakyReLU,
  no output activation (rows are scaled by the model, see ``RowScaler``).

``vector`` latents flatten the conv map into one code of ``latent_dim`` numbers
(AE, VAE, ESAD); MemAE keeps the conv map and addresses its memory at each position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reconad.engine.config import check_types, int_list
from reconad.errors import ConfigError
from reconad.models.base import ModelConfig

SCALINGS = ("standard", "minmax", "none")


@dataclass
class NetConfig(ModelConfig):
    """Settings every reconstruction model shares.

    input_shape: ``[D]`` for table rows, ``[C, H, W]`` for images or ``[C, T, H, W]``
    for video clips of T frames; the Detector
    fills it from the training data (None until then), and a saved model rebuilds
    its network from it.
    width: channels of the first conv stage (images); clips: the 3-D stages have
    ``3, 4, 8, 8`` times ``width`` channels (32 = the MemAE paper's video network).
    hidden: MLP hidden sizes, encoder side (tables); the decoder mirrors them.
    latent_dim: size of the code; None = 32 for images, ``clip(D // 2, 2, 16)`` for rows.
    min_size: the conv encoder halves the image until its side is at most this.
    scaling: how table features are scaled before the network, fitted on the
    unlabelled training rows and saved with the model: ``standard`` (z-score; a
    constant column gets scale 1), ``minmax`` (to [0, 1] on the training rows) or
    ``none``.  Images are used as they come, in [0, 1].
    """

    input_shape: list[int] | None = None
    width: int = 32
    hidden: list[int] | None = None
    latent_dim: int | None = None
    min_size: int = 4
    scaling: str = "standard"

    def __post_init__(self) -> None:
        check_types(self, integers=("width", "min_size", "latent_dim"), optional=("latent_dim",))
        if self.input_shape is not None:
            self.input_shape = int_list("input_shape", self.input_shape)
            if len(self.input_shape) not in (1, 3, 4) or min(self.input_shape) < 1:
                raise ConfigError(
                    f"input_shape must be [D] (rows), [C, H, W] (images) or [C, T, H, W] (clips), got {self.input_shape}"
                )
            if len(self.input_shape) >= 3 and min(self.input_shape[-2:]) < 8:
                raise ConfigError(f"images must be at least 8x8, got {self.input_shape[-2:]}")
        if self.hidden is not None:
            self.hidden = int_list("hidden", self.hidden)
            if any(h < 1 for h in self.hidden):
                raise ConfigError(f"hidden sizes must be >= 1, got {self.hidden}")
        if self.width < 4:
            raise ConfigError(f"width must be >= 4, got {self.width}")
        if self.latent_dim is not None and self.latent_dim < 1:
            raise ConfigError(f"latent_dim must be >= 1, got {self.latent_dim}")
        if self.min_size < 1:
            raise ConfigError(f"min_size must be >= 1, got {self.min_size}")
        if self.scaling not in SCALINGS:
            raise ConfigError(f"unknown scaling {self.scaling!r}; choose one of {', '.join(SCALINGS)}")

    @property
    def is_table(self) -> bool:
        return self.input_shape is not None and len(self.input_shape) == 1

    @property
    def is_video(self) -> bool:
        """Clips ``[C, T, H, W]``: the 3-D convolutional variant (``reconad.models.networks3d``)."""
        return self.input_shape is not None and len(self.input_shape) == 4

    def resolved_latent(self) -> int:
        if self.latent_dim is not None:
            return self.latent_dim
        if self.is_table and self.input_shape is not None:
            return int(min(16, max(2, self.input_shape[0] // 2)))
        return 32

    def resolved_hidden(self) -> list[int]:
        return list(self.hidden) if self.hidden is not None else [64, 32]


def _act() -> nn.Module:
    return nn.LeakyReLU(0.2, inplace=True)


class ConvEncoder(nn.Module):
    """(B, C, H, W) -> (B, channels[-1], h, w); records each stage's size for the decoder."""

    def __init__(
        self,
        in_channels: int,
        size: tuple[int, int],
        width: int,
        min_size: int,
        batchnorm: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.batchnorm = batchnorm
        h, w = size
        self.sizes: list[tuple[int, int]] = [(h, w)]
        self.channels: list[int] = [in_channels]
        layers: list[nn.Module] = []
        c_in = in_channels
        i = 0
        while max(h, w) > min_size and min(h, w) >= 4:
            c_out = width * min(2**i, 8)
            layers += [
                nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=bias and not batchnorm),
                nn.BatchNorm2d(c_out) if batchnorm else nn.Identity(),
                _act(),
            ]
            h, w = (h + 2 - 4) // 2 + 1, (w + 2 - 4) // 2 + 1
            self.sizes.append((h, w))
            self.channels.append(c_out)
            c_in, i = c_out, i + 1
        if not layers:
            raise ConfigError(f"image of size {size} is too small for the conv encoder")
        self.net = nn.Sequential(*layers)

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    @property
    def out_size(self) -> tuple[int, int]:
        return self.sizes[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ConvDecoder(nn.Module):
    """Mirror of a :class:`ConvEncoder`: its output map -> image in [0, 1] at the input size."""

    def __init__(self, encoder: ConvEncoder) -> None:
        super().__init__()
        self.sizes = list(reversed(encoder.sizes))
        chans = list(reversed(encoder.channels))
        self.ups = nn.ModuleList()
        self.posts = nn.ModuleList()
        for k in range(len(chans) - 1):
            last = k == len(chans) - 2
            bn = encoder.batchnorm and not last
            self.ups.append(nn.ConvTranspose2d(chans[k], chans[k + 1], 4, stride=2, padding=1, bias=not bn))
            self.posts.append(
                nn.Sigmoid() if last else nn.Sequential(nn.BatchNorm2d(chans[k + 1]) if bn else nn.Identity(), _act())
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = z
        for k, (up, post) in enumerate(zip(self.ups, self.posts)):
            x = post(up(x, output_size=self.sizes[k + 1]))
        return x


def mlp(dims: list[int], last_activation: bool = False, bias: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1], bias=bias))
        if i < len(dims) - 2 or last_activation:
            layers.append(_act())
    return nn.Sequential(*layers)


class VectorEncoder(nn.Module):
    """Input -> code vector of ``out_dim`` (conv + linear for images, MLP for rows).

    ``bias=False`` (with ``batchnorm=False``) drops every additive term, so the network
    cannot map all inputs to one constant code (Deep SVDD's argument against the
    trivial hypersphere).
    """

    def __init__(self, cfg: NetConfig, out_dim: int, batchnorm: bool = True, bias: bool = True) -> None:
        super().__init__()
        shape = cfg.input_shape
        assert shape is not None
        if len(shape) == 1:
            self.net: nn.Module = mlp([shape[0], *cfg.resolved_hidden(), out_dim], bias=bias)
        else:
            conv = ConvEncoder(shape[0], (shape[1], shape[2]), cfg.width, cfg.min_size, batchnorm, bias)
            h, w = conv.out_size
            linear = nn.Linear(conv.out_channels * h * w, out_dim, bias=bias)
            self.net = nn.Sequential(conv, nn.Flatten(), linear)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class VectorDecoder(nn.Module):
    """Code vector of ``latent_dim`` -> reconstruction of the input."""

    def __init__(self, cfg: NetConfig, latent_dim: int, batchnorm: bool = True) -> None:
        super().__init__()
        shape = cfg.input_shape
        assert shape is not None
        if len(shape) == 1:
            self.net: nn.Module = mlp([latent_dim, *reversed(cfg.resolved_hidden()), shape[0]])
        else:
            conv = ConvEncoder(shape[0], (shape[1], shape[2]), cfg.width, cfg.min_size, batchnorm)  # sizes only
            h, w = conv.out_size
            self.net = nn.Sequential(
                nn.Linear(latent_dim, conv.out_channels * h * w),
                _act(),
                nn.Unflatten(1, (conv.out_channels, h, w)),
                ConvDecoder(conv),
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class RowScaler(nn.Module):
    """Feature scaling of table rows, fitted once on training rows; saved as buffers."""

    shift: torch.Tensor
    scale: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, n_features: int, mode: str) -> None:
        super().__init__()
        self.mode = mode
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, rows: torch.Tensor) -> None:
        rows = rows.double()
        if self.mode == "standard":
            shift, spread = rows.mean(0), rows.std(0, unbiased=False)
        elif self.mode == "minmax":
            shift, spread = rows.amin(0), rows.amax(0) - rows.amin(0)
        else:
            shift, spread = torch.zeros(rows.shape[1], dtype=rows.dtype), torch.ones(rows.shape[1], dtype=rows.dtype)
        spread = torch.where(spread > 1e-8, spread, torch.ones_like(spread))  # constant columns stay as they are
        self.shift.copy_(shift.float())
        self.scale.copy_(spread.float())
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.shift) / self.scale
