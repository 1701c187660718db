"""Hierarchical feature reconstruction (HFR) anomaly detection and localization.

A frozen ImageNet encoder gives K=3 feature levels; a decoder learns to reconstruct
all of them from a narrow bottleneck on normal data only.  At test time the per-level
residuals are normalised by their statistics on held-out normal data (so no level
drowns the others), upsampled to the finest level, fused, smoothed, and upsampled to
the input size.  Only the decoder trains, on encoder features computed once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from reconad.backbones import build_backbone
from reconad.data.records import ImageBatch, collate_images
from reconad.engine.progress import progress as progress_iter
from reconad.models.base import AnomalyModel
from reconad.models.hfr.config import HFRConfig
from reconad.models.hfr.decoder import HFRDecoder


class FeatureCache(Dataset):
    """Encoder features of a whole dataset, held in memory (one tensor per level)."""

    def __init__(self, levels: list[torch.Tensor]) -> None:
        self.levels = levels

    def __len__(self) -> int:
        return int(self.levels[0].shape[0])

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        return [lv[i] for lv in self.levels]


class FeatureBatch(list):
    """A list of per-level feature tensors; ``len`` is the batch size."""

    def __len__(self) -> int:  # type: ignore[override]
        return int(self[0].shape[0]) if list.__len__(self) else 0

    def to(self, device: torch.device | str) -> "FeatureBatch":
        return FeatureBatch(t.to(device, non_blocking=True) for t in self)


def collate_features(items: list[list[torch.Tensor]]) -> FeatureBatch:
    return FeatureBatch(torch.stack(level) for level in zip(*items))


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class HFR(AnomalyModel):
    name = "hfr"
    frozen_prefixes = ("encoder.",)

    def __init__(self, config: HFRConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or HFRConfig(**kwargs)
        cfg = self.config
        self.encoder = build_backbone(cfg.backbone, layers=cfg.layers, weights=cfg.backbone_weights)
        self.decoder = HFRDecoder(self.encoder.channels, self.encoder.strides, cfg.width, cfg.bottleneck)
        # Channels-last runs the decoder's convolutions about 1.5x faster on CPU.
        self.decoder.to(memory_format=torch.channels_last)
        k = len(self.encoder.channels)
        if len(cfg.level_weights) != k:
            cfg.level_weights = [1.0] * k
        # Per-level residual statistics on held-out normal data (set by on_fit_end).
        self.register_buffer("level_mean", torch.zeros(k))
        self.register_buffer("level_std", torch.ones(k))
        self.register_buffer("level_weights", torch.tensor(cfg.level_weights, dtype=torch.float32))
        self.register_buffer("blur", gaussian_kernel1d(max(cfg.blur_sigma / min(self.encoder.strides), 1e-3)),
                             persistent=False)

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(images)

    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        """Run the frozen encoder once over ``dataset`` and keep the features."""
        loader = DataLoader(dataset, batch_size=16, shuffle=False, collate_fn=collate_images)
        chunks: list[list[torch.Tensor]] = []
        self.encoder.eval()
        for batch in progress_iter(loader, enabled=progress, desc="encoder features", unit="batch"):
            feats = self.extract(batch.image.to(device))
            chunks.append([f.cpu() for f in feats])
        levels = [torch.cat(parts) for parts in zip(*chunks)]
        return FeatureCache(levels)

    def collate_fn(self) -> Callable[[list[Any]], Any]:
        return collate_features

    def decode(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.decoder([f.contiguous(memory_format=torch.channels_last) for f in feats])

    def configure_optimizers(self, config):  # type: ignore[override]
        from reconad.models.base import make_optimizer

        return {"main": make_optimizer(self.decoder.parameters(), config)}

    def _noisy(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        s = self.config.feature_noise
        if not (self.training and s > 0):
            return feats
        out = []
        for f in feats:
            std = f.std(dim=(0, 2, 3), keepdim=True)
            out.append(f + s * std * torch.randn_like(f))
        return out

    def level_residuals(self, feats: list[torch.Tensor], recon: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-level residual maps (B, h_l, w_l)."""
        mode = self.config.residual
        out = []
        for f, r in zip(feats, recon):
            parts = []
            if "cosine" in mode:
                parts.append(1.0 - F.cosine_similarity(f, r, dim=1, eps=1e-6))
            if "l2" in mode:
                parts.append(((f - r) ** 2).mean(dim=1) / (f.pow(2).mean(dim=1) + 1e-6))
            out.append(sum(parts))
        return out

    def training_loss(self, batch: FeatureBatch) -> torch.Tensor:
        feats = list(batch)
        recon = self.decode(self._noisy(feats))
        return sum(r.mean() for r in self.level_residuals(feats, recon)) / len(feats)

    @torch.no_grad()
    def validation_loss(self, batch: FeatureBatch) -> float:
        feats = list(batch)
        recon = self.decode(feats)
        return float(sum(r.mean() for r in self.level_residuals(feats, recon)) / len(feats))

    @torch.no_grad()
    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """Fit the per-level normalisation on held-out normals (training data if none)."""
        data = val_data if val_data is not None and len(val_data) >= 2 else train_data
        loader = DataLoader(data, batch_size=32, shuffle=False, collate_fn=collate_features)
        k = len(self.encoder.channels)
        sums = torch.zeros(k, dtype=torch.float64)
        sq = torch.zeros(k, dtype=torch.float64)
        n = torch.zeros(k, dtype=torch.float64)
        self.eval()
        for batch in loader:
            feats = [f.to(device) for f in batch]
            res = self.level_residuals(feats, self.decode(feats))
            for i, r in enumerate(res):
                r = r.double().cpu()
                sums[i] += r.sum()
                sq[i] += (r * r).sum()
                n[i] += r.numel()
        mean = sums / n
        std = (sq / n - mean * mean).clamp_min(1e-12).sqrt()
        self.level_mean.copy_(mean.float())
        self.level_std.copy_(std.float())

    # ------------------------------------------------------------------ scoring
    def _smooth(self, m: torch.Tensor) -> torch.Tensor:
        if self.config.blur_sigma <= 0:
            return m
        k = self.blur.to(m.dtype)
        r = k.numel() // 2
        x = m.unsqueeze(1)
        # Reflection needs a pad smaller than the map; a wider blur than that replicates the edge.
        mode_w = "reflect" if r < x.shape[-1] else "replicate"
        mode_h = "reflect" if r < x.shape[-2] else "replicate"
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode=mode_w), k.view(1, 1, 1, -1))
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode=mode_h), k.view(1, 1, -1, 1))
        return x.squeeze(1)

    def fused_map(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fused, smoothed map at the finest level's resolution, and the raw residuals."""
        res = self.level_residuals(feats, self.decode(feats))
        size = max((r.shape[-2:] for r in res), key=lambda s: s[0] * s[1])
        w = self.level_weights / self.level_weights.sum()
        fused = torch.zeros(res[0].shape[0], *size, device=res[0].device, dtype=res[0].dtype)
        for i, r in enumerate(res):
            z = (r - self.level_mean[i]) / self.level_std[i]
            if z.shape[-2:] != size:
                z = F.interpolate(z.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
            fused = fused + w[i] * z
        return self._smooth(fused), res

    def image_score(self, fused: torch.Tensor, res: list[torch.Tensor]) -> torch.Tensor:
        mode = self.config.score
        flat = fused.flatten(1)
        if mode == "max":
            return flat.amax(dim=1)
        if mode == "mean":
            return flat.mean(dim=1)
        if mode == "topk":
            k = max(1, int(round(self.config.topk_ratio * flat.shape[1])))
            return flat.topk(k, dim=1).values.mean(dim=1)
        deepest = max(range(len(res)), key=lambda i: self.encoder.strides[i])
        return ((res[deepest] - self.level_mean[deepest]) / self.level_std[deepest]).flatten(1).mean(dim=1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images (B,3,H,W) in [0,1] -> (scores (B,), anomaly maps (B,H,W))."""
        feats = self.encoder(images)
        fused, res = self.fused_map(feats)
        scores = self.image_score(fused, res)
        maps = F.interpolate(fused.unsqueeze(1), size=images.shape[-2:], mode="bilinear", align_corners=False)
        return scores, maps.squeeze(1)

    def score_batch(self, batch: ImageBatch) -> tuple[torch.Tensor, torch.Tensor]:
        return self(batch.image)
