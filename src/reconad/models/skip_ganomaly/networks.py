"""Skip-GANomaly's generator: the family's U-Net, with a choice of how many skips carry."""

from __future__ import annotations

import torch

from reconad.models.gan import ConvPlan, UNetGenerator


class SkipUNet(UNetGenerator):
    """:class:`UNetGenerator` whose ``skip_levels`` deepest skips carry the encoder map and
    whose shallower ones carry zeros (None: every skip carries, the paper's U-Net)."""

    def __init__(self, plan: ConvPlan, skip_levels: int | None = None) -> None:
        super().__init__(plan)
        self.skip_levels = skip_levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.down.stages(x)
        skips = stages[:-1]
        if self.skip_levels is not None:
            cut = max(len(skips) - self.skip_levels, 0)
            skips = [torch.zeros_like(s) if i < cut else s for i, s in enumerate(skips)]
        return self.up(stages[-1], skips)
