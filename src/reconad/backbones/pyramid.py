"""FeaturePyramid: a frozen backbone that returns multi-scale feature maps."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from reconad.backbones.fold import fold_batchnorms
from reconad.errors import ConfigError


@runtime_checkable
class StagedBackbone(Protocol):
    """What FeaturePyramid needs from a backbone (EfficientNetLite and ResNet have it)."""

    input_mean: tuple[float, float, float]
    input_std: tuple[float, float, float]
    stage_channels: tuple[int, ...]
    stage_strides: tuple[int, ...]

    def forward_stages(self, x: torch.Tensor, stages: Sequence[int]) -> list[torch.Tensor]: ...

    def trim_to(self, stage: int) -> None: ...


def check_layers(name: str, backbone: Any, layers: Sequence[int]) -> tuple[int, ...]:
    """Validate 1-based, strictly increasing stage indices; ConfigError lists the choices."""
    strides, channels = backbone.stage_strides, backbone.stage_channels
    choices = ", ".join(f"{i} (stride {s}, {c} ch)" for i, (s, c) in enumerate(zip(strides, channels), start=1))
    hint = f"bad layers {layers!r} for {name}: give increasing stage indices, from {choices}"
    try:
        values = tuple(layers)
    except TypeError:
        raise ConfigError(hint) from None
    ok = (
        len(values) > 0
        and all(isinstance(i, Integral) and not isinstance(i, bool) for i in values)
        and all(1 <= i <= len(strides) for i in values)
        and all(a < b for a, b in zip(values, values[1:]))
    )
    if not ok:
        raise ConfigError(hint)
    return tuple(int(i) for i in values)


class FeaturePyramid(nn.Module):
    """Frozen encoder: images in [0, 1], shape (B, 3, H, W) -> one map per chosen stage.

    The backbone's own input normalisation is applied inside, and the backbone is cut
    after the deepest chosen stage (no head, no classifier).  Parameters never require
    grad and the module stays in eval mode, so BatchNorm statistics never change.

    Attributes: ``name``, ``layers`` (1-based stage indices), ``channels`` and
    ``strides`` (one per returned map; a map is ``ceil(H / stride)`` high).
    The given backbone is trimmed in place and its batch norms are folded into the
    convolutions (``reconad.backbones.fold``), so load weights before building it.
    """

    mean: torch.Tensor
    std: torch.Tensor
    backbone: Any  # a StagedBackbone module

    def __init__(self, backbone: nn.Module, layers: Sequence[int], name: str) -> None:
        super().__init__()
        if not isinstance(backbone, StagedBackbone):
            raise TypeError(f"backbone {name} has no stages (forward_stages, stage_channels, trim_to, ...)")
        staged = backbone
        self.name = name
        self.layers: tuple[int, ...] = check_layers(name, backbone, layers)
        self.channels: list[int] = [staged.stage_channels[i - 1] for i in self.layers]
        self.strides: list[int] = [staged.stage_strides[i - 1] for i in self.layers]
        staged.trim_to(max(self.layers))
        backbone.eval()
        # Frozen for good, so its batch norms are folded into the convolutions once (the
        # same function, one pass over every activation fewer).
        self.folded_batchnorms = fold_batchnorms(backbone)
        self.backbone = backbone
        # Not persistent: the normalisation is part of the backbone's definition.
        mean = torch.tensor(staged.input_mean).view(1, 3, 1, 1)
        std = torch.tensor(staged.input_std).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.requires_grad_(False)
        # Depthwise convolutions run about twice as fast on CPU in channels-last layout.
        self.backbone.to(memory_format=torch.channels_last)
        super().train(False)

    def train(self, mode: bool = True) -> FeaturePyramid:
        """Stay in eval mode whatever ``mode`` is: the encoder is frozen."""
        return super().train(False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (B, 3, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {images.dtype}")
        x = ((images - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.backbone.forward_stages(x, self.layers)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, layers={self.layers}, channels={self.channels}, strides={self.strides}"
