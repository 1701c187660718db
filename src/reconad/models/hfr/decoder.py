"""The HFR decoder: all encoder levels -> a narrow bottleneck -> every level again."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class HFRDecoder(nn.Module):
    """Reconstruct K feature levels from one bottleneck at the deepest resolution.

    Every level is projected, pooled to the deepest level's grid and concatenated;
    a 3x3 convolution squeezes that into ``bottleneck`` channels.  The decoder then
    climbs back up, one stage per level, and a 1x1 head per level predicts that
    level's features.  There is no skip path from an input level to its output, so
    fine detail has to pass through the bottleneck.
    """

    def __init__(
        self,
        channels: list[int],
        strides: list[int],
        width: int = 128,
        bottleneck: int = 64,
        bottleneck_pool: int = 1,
        memory: nn.Module | None = None,
    ) -> None:
        super().__init__()
        #: optional memory on the bottleneck (MemAE's module): each position is rebuilt
        #: from learned prototypes before decoding; its last addressing weights are kept
        #: in ``addressing`` for the entropy loss
        self.memory = memory
        self.addressing: torch.Tensor | None = None
        self.bottleneck_pool = int(bottleneck_pool)
        if len(channels) != len(strides):
            raise ValueError("channels and strides must have one entry per level")
        self.channels = list(channels)
        self.strides = list(strides)
        deepest = max(strides)
        self.pool = [deepest // s for s in strides]
        proj = max(16, width // 2)
        self.project = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, proj, 1, bias=False), nn.BatchNorm2d(proj), nn.ReLU(inplace=True))
            for c in channels
        )
        self.squeeze = conv_block(proj * len(channels), bottleneck)
        # Decoder stages from the deepest level up; widths shrink as resolution grows.
        order = sorted(range(len(strides)), key=lambda i: -strides[i])
        self.order = order
        stages, heads = [], []
        c_prev = bottleneck
        for rank_, level in enumerate(order):
            c = max(16, width // (2**rank_))
            stages.append(nn.Sequential(conv_block(c_prev, c), conv_block(c, c)))
            heads.append(nn.Conv2d(c, channels[level], 1))
            c_prev = c
        self.stages = nn.ModuleList(stages)
        self.heads = nn.ModuleList(heads)

    def encode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        pooled = []
        for f, proj, k in zip(feats, self.project, self.pool):
            x = proj(f)
            if k > 1:
                x = F.avg_pool2d(x, kernel_size=k, stride=k, ceil_mode=True)
            pooled.append(x)
        size = pooled[self.order[0]].shape[-2:]
        pooled = [
            p if p.shape[-2:] == size else F.interpolate(p, size=size, mode="bilinear", align_corners=False)
            for p in pooled
        ]
        z = self.squeeze(torch.cat(pooled, dim=1))
        if self.bottleneck_pool > 1:
            z = F.avg_pool2d(z, kernel_size=self.bottleneck_pool, stride=self.bottleneck_pool, ceil_mode=True)
        return z

    def read_memory(self, z: torch.Tensor) -> torch.Tensor:
        """The bottleneck rebuilt from the memory (identity without one)."""
        if self.memory is None:
            return z
        b, c, h, w = z.shape
        q = z.permute(0, 2, 3, 1).reshape(-1, c)
        q_hat, self.addressing = self.memory(q)
        return q_hat.view(b, h, w, c).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        x = self.read_memory(self.encode(feats))
        out: dict[int, torch.Tensor] = {}
        for stage, head, level in zip(self.stages, self.heads, self.order):
            size = feats[level].shape[-2:]
            if x.shape[-2:] != size:
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            x = stage(x)
            out[level] = head(x)
        return [out[level] for level in range(len(feats))]
