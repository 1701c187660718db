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
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reconad.backbones import FeaturePyramid, build_backbone
from reconad.data.records import Batch, FeatureBatch, ImageBatch, collate_features
from reconad.errors import ConfigError
from reconad.models.base import AnomalyModel, OptimizerSpec, ScoreOutput
from reconad.models.encoder_features import FeatureCache, encode_dataset
from reconad.models.hfr.config import HFRConfig
from reconad.models.hfr.decoder import HFRDecoder


def gaussian_kernel1d(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


class HFR(AnomalyModel):
    name = "hfr"
    frozen_prefixes = ("encoder.",)

    config: HFRConfig
    encoder: FeaturePyramid
    level_mean: torch.Tensor
    level_std: torch.Tensor
    level_weights: torch.Tensor
    blur: torch.Tensor

    def __init__(self, config: HFRConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or HFRConfig(**kwargs)
        cfg = self.config
        self.encoder = build_backbone(cfg.backbone, layers=cfg.layers, weights=cfg.backbone_weights)
        self.decoder = HFRDecoder(
            self.encoder.channels, self.encoder.strides, cfg.width, cfg.bottleneck, cfg.bottleneck_pool
        )
        # Channels-last runs the decoder's convolutions about 1.5x faster on CPU.
        self.decoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        k = len(self.encoder.channels)
        if cfg.level_weights is None:
            weights = [2.0**i for i in range(k)]
        elif len(cfg.level_weights) == k:
            weights = list(cfg.level_weights)
        else:
            raise ConfigError(f"level_weights has {len(cfg.level_weights)} entries for {k} feature levels")
        # Per-level residual statistics on held-out normal data (set by on_fit_end).
        self.register_buffer("level_mean", torch.zeros(k))
        self.register_buffer("level_std", torch.ones(k))
        self.register_buffer("level_weights", torch.tensor(weights, dtype=torch.float32))
        for i in range(k):  # filled by on_fit_end when normalization == "position"
            self.register_buffer(f"pos_mean_{i}", torch.zeros(1, 1))
            self.register_buffer(f"pos_std_{i}", torch.ones(1, 1))
        self.register_buffer(
            "blur", gaussian_kernel1d(max(cfg.blur_sigma / min(self.encoder.strides), 1e-3)), persistent=False
        )

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(images)

    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        """Run the frozen encoder once over ``dataset`` and keep the features.

        A :class:`FeatureCache` is used as it is (features already computed by the same
        encoder, e.g. shared by the one-class protocol across classes).
        """
        if isinstance(dataset, FeatureCache):
            return dataset
        return FeatureCache(encode_dataset(self.encoder, dataset, device, batch_size=4, progress=progress))

    def collate_fn(self) -> Callable[[list[Any]], Any]:
        return collate_features

    def decode(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        return self.decoder([f.contiguous(memory_format=torch.channels_last) for f in feats])

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {"main": OptimizerSpec(self.decoder.parameters())}

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
            out.append(cast(torch.Tensor, sum(parts)))
        return out

    def training_loss(self, batch: FeatureBatch) -> torch.Tensor:
        feats = batch.levels
        recon = self.decode(self._noisy(feats))
        return cast(torch.Tensor, sum(r.mean() for r in self.level_residuals(feats, recon)) / len(feats))

    @torch.no_grad()
    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """Fit the residual normalisation on held-out normals (training data if none).

        ``level``: one mean/std per level.  ``position``: a mean/std map per level
        (smoothed), for aligned objects whose normal residual depends on where in the
        image a pixel is; its std never goes below a tenth of the level's std.
        """
        data = val_data if val_data is not None and len(val_data) >= 2 else train_data  # type: ignore[arg-type]
        loader = DataLoader(data, batch_size=32, shuffle=False, collate_fn=collate_features)
        k = len(self.encoder.channels)
        sums: list[torch.Tensor] = [torch.zeros(()) for _ in range(k)]
        sq: list[torch.Tensor] = [torch.zeros(()) for _ in range(k)]
        n = 0
        self.eval()
        for batch in loader:
            feats = [f.to(device) for f in batch.levels]
            res = self.level_residuals(feats, self.decode(feats))
            for i, r in enumerate(res):
                r = r.double().cpu()
                sums[i] = sums[i] + r.sum(0)
                sq[i] = sq[i] + (r * r).sum(0)
            n += int(res[0].shape[0])
        for i in range(k):
            pos_mean = sums[i] / n
            pos_var = (sq[i] / n - pos_mean * pos_mean).clamp_min(0)
            mean = pos_mean.mean()
            std = (pos_var.mean() + ((pos_mean - mean) ** 2).mean()).clamp_min(1e-12).sqrt()
            self.level_mean[i] = mean.float()
            self.level_std[i] = std.float()
            if self.config.normalization == "position":
                pm = self._smooth_level(pos_mean.float().unsqueeze(0), sigma=2.0)[0]
                ps = self._smooth_level(pos_var.float().sqrt().unsqueeze(0), sigma=2.0)[0]
                self._buffers[f"pos_mean_{i}"] = pm.to(self.level_mean.device)
                self._buffers[f"pos_std_{i}"] = ps.clamp_min(0.1 * float(std)).to(self.level_mean.device)

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        # Position maps are sized by the training images: take their shape from the file.
        for key, value in state.items():
            if key.startswith("pos_") and key in self._buffers:
                self._buffers[key] = torch.empty_like(value, device=self.level_mean.device)
        super().load_trainable_state_dict(state)

    def normalise(self, r: torch.Tensor, i: int) -> torch.Tensor:
        if self.config.normalization == "position":
            mean = cast(torch.Tensor, self._buffers[f"pos_mean_{i}"])
            std = cast(torch.Tensor, self._buffers[f"pos_std_{i}"])
            if mean.shape != r.shape[-2:]:
                mean = F.interpolate(mean[None, None], size=r.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
                std = F.interpolate(std[None, None], size=r.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
            return (r - mean) / std
        return (r - self.level_mean[i]) / self.level_std[i]

    # ------------------------------------------------------------------ scoring
    def _smooth_level(self, m: torch.Tensor, sigma: float) -> torch.Tensor:
        """Gaussian blur of (B, h, w) maps with ``sigma`` in map cells."""
        return self._blur(m, gaussian_kernel1d(sigma).to(m.device, m.dtype))

    def smooth(self, m: torch.Tensor) -> torch.Tensor:
        if self.config.blur_sigma <= 0:
            return m
        return self._blur(m, self.blur.to(m.dtype))

    @staticmethod
    def _blur(m: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
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
        # Sizes as plain ints: the same code then traces (ONNX export) with a free batch axis.
        size = max((tuple(int(v) for v in r.shape[-2:]) for r in res), key=lambda s: s[0] * s[1])
        w = self.level_weights / self.level_weights.sum()
        fused: torch.Tensor | None = None
        for i, r in enumerate(res):
            z = self.normalise(r, i)
            if tuple(z.shape[-2:]) != size:
                z = F.interpolate(z.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
            fused = w[i] * z if fused is None else fused + w[i] * z
        return self.smooth(fused), res  # type: ignore[arg-type]

    def image_score(self, fused: torch.Tensor, res: list[torch.Tensor]) -> torch.Tensor:
        mode = self.config.score
        flat = fused.flatten(1)
        if mode == "max":
            return flat.amax(dim=1)
        if mode == "mean":
            return flat.mean(dim=1)
        if mode == "topk":
            k = max(1, int(round(self.config.topk_ratio * int(flat.shape[1]))))
            return flat.topk(k, dim=1).values.mean(dim=1)
        deepest = max(range(len(res)), key=lambda i: self.encoder.strides[i])
        return self.normalise(res[deepest], deepest).flatten(1).mean(dim=1)

    #: On CPU, scoring runs in micro-batches of at most this many input pixels (one
    #: 256 x 256 image; several smaller ones): the encoder's activations of a whole batch
    #: of 16 at 256 px (~100 MB) fall out of the caches, which made batch 16 slower per
    #: image than batch 1 (BENCHMARKS.md, speed).  Results are the same (eval mode, no
    #: batch statistics).
    cpu_micro_batch_pixels: int | None = 256 * 256

    def predict_step(self, batch: Batch) -> ScoreOutput:
        """Images -> scores and maps at the input size; a ``FeatureBatch`` of encoder features
        already computed -> the same scores, and maps at the finest feature grid."""
        if isinstance(batch, FeatureBatch):
            fused, res = self.fused_map(batch.levels)
            return ScoreOutput(self.image_score(fused, res), fused)
        if not isinstance(batch, ImageBatch):
            raise TypeError(f"hfr scores images or encoder features, got {type(batch).__name__}")
        images = batch.image
        chunk = self.micro_batch(images)
        if chunk:
            parts = [self._score_and_map(x) for x in images.split(chunk)]
            return ScoreOutput(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))
        scores, maps = self._score_and_map(images)
        return ScoreOutput(scores, maps)

    def _score_and_map(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.encoder(images)
        fused, res = self.fused_map(feats)
        scores = self.image_score(fused, res)
        size = tuple(int(v) for v in images.shape[-2:])
        maps = F.interpolate(fused.unsqueeze(1), size=size, mode="bilinear", align_corners=False)
        return scores, maps.squeeze(1)

    def input_normalisation(self) -> dict[str, list[float]]:
        return {
            "mean": [float(v) for v in self.encoder.mean.flatten()],
            "std": [float(v) for v in self.encoder.std.flatten()],
        }
