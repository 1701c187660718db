"""Fold a frozen network's batch norms into the convolutions that feed them.

In eval mode a BatchNorm2d is a fixed per-channel affine map, y = a * x + b with
a = gamma / sqrt(running_var + eps) and b = beta - a * running_mean, so the convolution
before it can absorb it: W' = a * W (per output channel), bias' = a * bias + b.  The
result computes the same function (up to float rounding) with one pass over each
activation fewer; ``FeaturePyramid`` does this once when it is built, since its encoder
never trains.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["fold_batchnorms"]


def _fold_pair(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Write ``bn`` (eval-mode statistics) into ``conv``'s weight and bias, in place."""
    assert bn.running_mean is not None and bn.running_var is not None
    var = bn.running_var.double()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.double()
    shift = -bn.running_mean.double() * scale
    if bn.bias is not None:
        shift = shift + bn.bias.double()
    if conv.bias is not None:
        shift = shift + scale * conv.bias.double()
    weight = conv.weight.double() * scale.view(-1, *([1] * (conv.weight.ndim - 1)))
    with torch.no_grad():
        conv.weight.copy_(weight.to(conv.weight.dtype))
        conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)


def fold_batchnorms(module: nn.Module) -> int:
    """Fold every BatchNorm2d into the Conv2d registered just before it in the same parent.

    This relies on the backbones' layout (and is tested on each of them): wherever a
    parent module registers a convolution and then a batch norm with no other convolution
    in between, ``forward`` applies that batch norm to that convolution's output.  The
    batch norms become ``nn.Identity``.  Returns the number of folded pairs; a batch norm
    without a convolution before it is left as it is.
    """
    if module.training:
        raise ValueError("fold_batchnorms needs a module in eval mode (it uses the running statistics)")
    folded = 0
    for parent in list(module.modules()):
        last_conv: nn.Conv2d | None = None
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d):
                last_conv = child
            elif isinstance(child, nn.BatchNorm2d) and last_conv is not None:
                if last_conv.out_channels != child.num_features:
                    raise ValueError(
                        f"cannot fold {name}: {child.num_features} channels after a conv of {last_conv.out_channels}"
                    )
                _fold_pair(last_conv, child)
                setattr(parent, name, nn.Identity())
                folded += 1
                last_conv = None
    return folded
