"""ResNet-18, ResNet-50 and Wide-ResNet-50-2, written for reconad.

The module names reproduce torchvision's layout (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0``, ``fc`` ...), so a torchvision state
dict loads strictly.  The bottleneck puts its stride on the 3x3 convolution (the
"ResNet v1.5" variant torchvision uses).  No weights ship with reconad: pretrained
weights come from a checkpoint file the user supplies.

Stages are ``layer1`` .. ``layer4`` (indices 1..4, strides 4, 8, 16, 32).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from reconad.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None, width: int) -> None:
        super().__init__()
        del width  # basic blocks have no bottleneck width
        self.conv1 = _conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + skip)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None, width: int) -> None:
        super().__init__()
        self.conv1 = _conv1x1(cin, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = _conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + skip)


@dataclass(frozen=True)
class ResNetSpec:
    block: type[BasicBlock] | type[Bottleneck]
    repeats: tuple[int, int, int, int]
    width_factor: int = 1  # bottleneck width multiplier (2 for Wide-ResNet-50-2)


RESNET_SPECS: dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec(BasicBlock, (2, 2, 2, 2)),
    "resnet50": ResNetSpec(Bottleneck, (3, 4, 6, 3)),
    "wide_resnet50_2": ResNetSpec(Bottleneck, (3, 4, 6, 3), width_factor=2),
}


class ResNet(nn.Module):
    """torchvision-compatible ResNet; ``forward_stages`` returns ``layer1..4`` outputs."""

    def __init__(self, name: str = "resnet18", num_classes: int = 1000) -> None:
        super().__init__()
        if name not in RESNET_SPECS:
            choices = ", ".join(RESNET_SPECS)
            raise ConfigError(f"unknown ResNet variant {name!r}; choose one of: {choices}")
        spec = RESNET_SPECS[name]
        self.name = name
        self.image_size = 224  # evaluation resolution for ImageNet classification
        self.input_mean = IMAGENET_MEAN
        self.input_std = IMAGENET_STD

        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)

        cin = 64
        layers: list[nn.Sequential] = []
        for i, repeats in enumerate(spec.repeats):
            planes = 64 * 2**i
            stride = 1 if i == 0 else 2
            cout = planes * spec.block.expansion
            downsample = None
            if stride != 1 or cin != cout:
                downsample = nn.Sequential(_conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
            width = planes * spec.width_factor
            blocks = [spec.block(cin, planes, stride, downsample, width)]
            blocks += [spec.block(cout, planes, 1, None, width) for _ in range(repeats - 1)]
            layers.append(nn.Sequential(*blocks))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        expansion = spec.block.expansion
        self.stage_channels: tuple[int, ...] = tuple(64 * 2**i * expansion for i in range(4))
        self.stage_strides: tuple[int, ...] = (4, 8, 16, 32)

        self.avgpool: nn.Module | None = nn.AdaptiveAvgPool2d(1)
        self.fc: nn.Module | None = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def num_stages(self) -> int:
        return 4

    def _layers(self) -> list[nn.Module | None]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_stages(self, x: torch.Tensor, stages: Sequence[int]) -> list[torch.Tensor]:
        """Outputs of the given layers (1-based, increasing); stops after the deepest."""
        deepest = max(stages)
        outputs: list[torch.Tensor] = []
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i, layer in enumerate(self._layers()[:deepest], start=1):
            if layer is None:
                raise RuntimeError(f"layer{i} was trimmed away")
            x = layer(x)
            if i in stages:
                outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fc is None or self.avgpool is None:
            raise RuntimeError("this ResNet was trimmed for feature extraction")
        x = self.forward_stages(x, (4,))[0]
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def trim_to(self, stage: int) -> None:
        """Drop the layers after ``stage`` and the pooling/classifier (feature use only)."""
        for i in range(stage + 1, 5):
            setattr(self, f"layer{i}", None)
        self.avgpool = self.fc = None
