"""Hierarchical feature reconstruction (HFR) anomaly detection and localization.

A frozen ImageNet encoder gives K=3 feature levels; a decoder learns to reconstruct
all of them from a narrow bottleneck on normal data only.  At test time the per-level
residuals are normalised by their statistics on held-out normal data (so no level
drowns the others), upsampled to the finest level, fused, smoothed, and upsampled to
the input size.  Only the decoder trains, on encoder features computed once.

Options beyond the paper's plain model (each measured in BENCHMARKS.md; ``HFRConfig``
documents them): a nearest-neighbour term beside the residual (``hybrid``, in
``nearest.py``), a MemAE memory on the bottleneck (``memory_slots``), per-level image
scores (``score="level-topk"``), and training on a few labelled anomalies (a deviation
loss that pushes their normalised residual up, inside their masks when given).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reconad.backbones import FeaturePyramid, build_backbone
from reconad.data.records import Batch, FeatureBatch, ImageBatch, collate_features
from reconad.data.sizes import dataset_size
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.errors import ConfigError
from reconad.models.base import AnomalyModel, ScoreOutput
from reconad.models.encoder_features import FeatureCache, encode_with_labels
from reconad.models.feature_maps import gaussian_blur, gaussian_kernel1d
from reconad.models.hfr.config import HFRConfig
from reconad.models.hfr.decoder import HFRDecoder
from reconad.models.hfr.nearest import NearestTerm, patch_features, pooled_features
from reconad.models.memae.model import Memory, addressing_entropy

#: named settings (``Detector("hfr", preset=...)``); the options a user passes win
PRESETS: dict[str, dict[str, Any]] = {
    # the paper's plain HFR: equal level weights, unnormalised residuals, the map's maximum
    "paper": {"level_weights": [1.0, 1.0, 1.0], "normalization": "none", "score": "max", "hybrid": "none"},
    # Lite0 + Lite1 + Lite2 features joined (reconad.backbones.ensemble; cost in BENCHMARKS §24)
    "ensemble": {"backbone": "efficientnet_lite_ensemble"},
}


def _features(batch: Batch) -> FeatureBatch:
    """What HFR trains on: cached encoder features (``prepare_data`` makes them)."""
    if not isinstance(batch, FeatureBatch):
        raise TypeError(f"hfr trains on encoder features (FeatureBatch), got {type(batch).__name__}")
    return batch


class HFR(AnomalyModel):
    name = "hfr"
    frozen_prefixes = ("encoder.",)
    #: labelled anomalies (``fit(images, y)``, masks when given) train the deviation loss
    uses_labels: ClassVar[bool] = True
    presets: ClassVar[dict[str, dict[str, Any]]] = PRESETS
    #: On CPU, scoring runs in micro-batches of at most this many input pixels (one
    #: 256 x 256 image; several smaller ones): the encoder's activations of a whole batch
    #: of 16 at 256 px (~100 MB) fall out of the caches, which made batch 16 slower per
    #: image than batch 1 (BENCHMARKS.md, speed).  Results are the same (eval mode, no
    #: batch statistics).
    cpu_micro_batch_pixels: int | None = 256 * 256

    config: HFRConfig
    encoder: FeaturePyramid
    level_mean: torch.Tensor
    level_std: torch.Tensor
    level_weights: torch.Tensor
    score_mean: torch.Tensor
    score_std: torch.Tensor
    tail: torch.Tensor
    blur: torch.Tensor

    def __init__(self, config: HFRConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or HFRConfig(**kwargs)
        cfg = self.config
        self.encoder = build_backbone(cfg.backbone, layers=cfg.layers, weights=cfg.backbone_weights)
        memory = None
        if cfg.memory_slots:
            memory = Memory(cfg.memory_slots, cfg.bottleneck, 1.0 / cfg.memory_slots, cfg.memory_temperature)
        self.decoder = HFRDecoder(
            self.encoder.channels, self.encoder.strides, cfg.width, cfg.bottleneck, cfg.bottleneck_pool, memory
        )
        # Channels-last runs the decoder's convolutions about 1.5x faster on CPU.
        self.decoder.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack this keyword-only form
        self._register_statistics(len(self.encoder.channels))
        self.nearest: NearestTerm | None = None
        if cfg.hybrid != "none":
            k = cfg.hybrid_k or (2 if cfg.hybrid == "pooled" else 1)
            self.nearest = NearestTerm(cfg.hybrid, k, cfg.hybrid_budget)
        if cfg.hybrid in ("patch", "bottleneck") and cfg.hybrid_scale == "tail":
            # median and (q99 - median) of the residual map, then of the nearest map (held-out normals)
            self.register_buffer("tail", torch.tensor([0.0, 1.0, 0.0, 1.0]))

    def _register_statistics(self, k: int) -> None:
        cfg = self.config
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
        # Normal statistics of image scores: per level (``level-topk``) and of the base
        # score (index k, for the ``pooled`` hybrid); only models that use them hold them.
        if cfg.score == "level-topk" or cfg.hybrid == "pooled":
            self.register_buffer("score_mean", torch.zeros(k + 1))
            self.register_buffer("score_std", torch.ones(k + 1))
        for i in range(k):  # filled by on_fit_end when normalization == "position"
            self.register_buffer(f"pos_mean_{i}", torch.zeros(1, 1))
            self.register_buffer(f"pos_std_{i}", torch.ones(1, 1))
        sigma = max(cfg.blur_sigma / min(self.encoder.strides), 1e-3)
        self.register_buffer("blur", gaussian_kernel1d(sigma), persistent=False)

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def extract(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.encoder(images)

    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        """Run the frozen encoder once over ``dataset`` and keep the features (with labels and
        masks when some items are labelled anomalies).

        A :class:`FeatureCache` is used as it is (features already computed by the same
        encoder, e.g. shared by the one-class protocol across classes).
        """
        if isinstance(dataset, FeatureCache):
            if self.config.denoise != "none" and not hasattr(dataset, "corrupted"):
                raise ConfigError(
                    f"denoise={self.config.denoise!r} needs the training images (it encodes corrupted copies); "
                    "got encoder features computed beforehand"
                )
            return dataset
        enc = encode_with_labels(self.encoder, dataset, device, batch_size=4, progress=progress)
        labelled = bool((enc.labels == 1).any())
        clean = FeatureCache(enc.levels, enc.labels, enc.masks) if labelled else FeatureCache(enc.levels)
        if self.config.denoise == "none":
            return clean
        from reconad.models.hfr.denoise import denoise_cache

        return denoise_cache(clean, dataset, self.encoder, device, self.config, progress)

    def collate_fn(self) -> Callable[[list[Any]], Batch]:
        if self.config.denoise == "none":
            return collate_features
        from reconad.models.hfr.denoise import collate_denoise

        return collate_denoise

    def _decoder_input(self, batch: FeatureBatch) -> list[torch.Tensor]:
        """What the decoder sees in training: the corrupted copies' features where the
        denoising objective drew one (``denoise``), else the (noisy, ``feature_noise``) features."""
        inputs = getattr(batch, "inputs", None)
        return self._noisy(inputs if self.training and inputs is not None else batch.levels)

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

    def _memory_loss(self) -> torch.Tensor | float:
        a = self.decoder.addressing
        if self.decoder.memory is None or a is None or not self.config.memory_entropy:
            return 0.0
        return self.config.memory_entropy * addressing_entropy(a)

    def training_loss(self, batch: Batch) -> torch.Tensor:
        batch = _features(batch)
        feats = batch.levels
        res = self.level_residuals(feats, self.decode(self._decoder_input(batch)))
        loss = cast(torch.Tensor, sum(r.mean() for r in res) / len(feats)) + self._defect_loss(batch, res)
        return loss if self.decoder.memory is None else loss + self._memory_loss()

    def _defect_loss(self, batch: FeatureBatch, res: list[torch.Tensor]) -> torch.Tensor | float:
        """``denoise_weight`` times the mean residual inside the pasted defects (denoising only)."""
        defect = getattr(batch, "defect", None)
        if not (self.training and defect is not None and self.config.denoise_weight > 0):
            return 0.0
        from reconad.models.hfr.denoise import defect_loss

        return self.config.denoise_weight * defect_loss(res, defect)

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        batch = _features(batch)
        if batch.label is None or not bool((batch.label == 1).any()):
            return StepOutput(ctx.step("main", self.training_loss(batch)))
        from reconad.models.hfr.supervision import deviation_losses

        feats = batch.levels
        res = self.level_residuals(feats, self.decode(self._decoder_input(batch)))
        rec, dev = deviation_losses(res, batch.label, batch.mask, self.config.anomaly_margin, self.config.topk_ratio)
        loss = rec + self.config.anomaly_weight * dev + self._memory_loss() + self._defect_loss(batch, res)
        logs = {"reconstruction": float(rec.detach()), "deviation": float(dev.detach())}
        return StepOutput(ctx.step("main", loss), logs)

    # ------------------------------------------------------- fitting statistics
    @torch.no_grad()
    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """Fit the residual normalisation on held-out normals (training data if none), then
        the nearest-neighbour bank (on the normal training items) and the score statistics.

        ``level``: one mean/std per level.  ``position``: a mean/std map per level
        (smoothed), for aligned objects whose normal residual depends on where in the
        image a pixel is; its std never goes below a tenth of the level's std.
        """
        normal_train = train_data.normal() if isinstance(train_data, FeatureCache) else train_data
        held_out = normal_train
        if val_data is not None and dataset_size(val_data) >= 2 and self.config.normalize_on == "held-out":
            held_out = val_data
        self.eval()
        self._fit_normalisation(held_out, device)
        if self.nearest is not None:
            self.nearest.fit_bank(self._nearest_vectors(normal_train, device).flatten(0, -2))
            self.nearest.fit_stats(self._nearest_values(held_out, device))
            if "tail" in self._buffers:
                self._fit_tails(held_out, device)
        if self.config.score == "level-topk" or self.config.hybrid == "pooled":
            self._fit_score_statistics(held_out, device)

    def _batches(self, data: Dataset, device: torch.device) -> Any:
        for batch in DataLoader(data, batch_size=32, shuffle=False, collate_fn=collate_features):
            yield [f.to(device) for f in batch.levels]

    def _fit_normalisation(self, data: Dataset, device: torch.device) -> None:
        k = len(self.encoder.channels)
        sums: list[torch.Tensor] = [torch.zeros(()) for _ in range(k)]
        sq: list[torch.Tensor] = [torch.zeros(()) for _ in range(k)]
        n = 0
        for feats in self._batches(data, device):
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

    def _nearest_input(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """The vectors the nearest-neighbour term compares: (B, D) or (B, h, w, D)."""
        kind = self.config.hybrid
        if kind == "pooled":
            return pooled_features(feats)
        if kind == "bottleneck":
            z = self.decoder.encode([f.contiguous(memory_format=torch.channels_last) for f in feats])
            return z.permute(0, 2, 3, 1).contiguous()
        return patch_features(feats, self.encoder.strides)

    def _nearest_vectors(self, data: Dataset, device: torch.device) -> torch.Tensor:
        return torch.cat([self._nearest_input(feats).cpu() for feats in self._batches(data, device)])

    def _nearest_values(self, data: Dataset, device: torch.device) -> torch.Tensor:
        assert self.nearest is not None
        return torch.cat([self.nearest.distances(self._nearest_input(f)).cpu() for f in self._batches(data, device)])

    def _fit_tails(self, data: Dataset, device: torch.device) -> None:
        """Median and q99 - median of the residual map and of the nearest map on ``data``."""
        res_values, nn_values = [], []
        for feats in self._batches(data, device):
            residual, _ = self._residual_map(feats)
            res_values.append(residual.flatten().cpu())
            nn_values.append(self._nearest_map(feats, tuple(residual.shape[-2:])).flatten().cpu())
        stats = []
        for v in (torch.cat(res_values), torch.cat(nn_values)):
            v = v[torch.randperm(len(v), generator=torch.Generator().manual_seed(0))[: 1 << 22]].double()
            med, q99 = torch.quantile(v, torch.tensor([0.5, 0.99], dtype=torch.float64)).tolist()
            stats += [med, max(q99 - med, 1e-12)]
        self.tail.copy_(torch.tensor(stats, dtype=torch.float32))

    def _fit_score_statistics(self, data: Dataset, device: torch.device) -> None:
        """Normal mean/std of each level's top-k score and of the base image score."""
        rows = []
        for feats in self._batches(data, device):
            fused, res = self.fused_map(feats)
            per_level = [self._topk(self._level_map(r, i)) for i, r in enumerate(res)]
            rows.append(torch.stack([*per_level, self._base_score(fused, res)], dim=1).cpu())
        values = torch.cat(rows).double()
        self.score_mean.copy_(values.mean(0).float())
        self.score_std.copy_(
            values.std(0).clamp_min(1e-12).float() if len(values) > 1 else torch.ones(len(self.score_std))
        )

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        # Position maps and banks are sized by the training data: take their shape from the file.
        for key, value in state.items():
            if key.startswith("pos_") and key in self._buffers:
                self._buffers[key] = torch.empty_like(value, device=self.level_mean.device)
        if self.nearest is not None:
            self.nearest.load_shape(state, "nearest.")
        super().load_trainable_state_dict(state)

    # ------------------------------------------------------------------ scoring
    def normalise(self, r: torch.Tensor, i: int) -> torch.Tensor:
        """A level's residual map in units of its normal spread (held-out normals)."""
        mode = self.config.normalization
        if mode == "none":
            return r
        if mode == "position":
            mean = cast(torch.Tensor, self._buffers[f"pos_mean_{i}"])
            std = cast(torch.Tensor, self._buffers[f"pos_std_{i}"])
            if mean.shape != r.shape[-2:]:
                mean = F.interpolate(mean[None, None], size=r.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
                std = F.interpolate(std[None, None], size=r.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
            return (r - mean) / std
        return (r - self.level_mean[i]) / self.level_std[i]

    def _smooth_level(self, m: torch.Tensor, sigma: float) -> torch.Tensor:
        """Gaussian blur of (B, h, w) maps with ``sigma`` in map cells."""
        return gaussian_blur(m, gaussian_kernel1d(sigma).to(m.device, m.dtype))

    def smooth(self, m: torch.Tensor) -> torch.Tensor:
        """The fused map smoothed by ``blur_sigma`` input pixels."""
        if self.config.blur_sigma <= 0:
            return m
        return gaussian_blur(m, self.blur.to(m.dtype))

    def _level_map(self, r: torch.Tensor, i: int) -> torch.Tensor:
        """Level ``i``'s normalised map, smoothed by ``blur_sigma`` input pixels on its own grid."""
        z = self.normalise(r, i)
        sigma = self.config.blur_sigma / self.encoder.strides[i]
        return z if sigma <= 0 else self._smooth_level(z, sigma)

    def _residual_map(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The weighted sum of the normalised level residuals at the finest level's grid
        (unsmoothed), and the raw residuals."""
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
        assert fused is not None
        return fused, res

    def _nearest_map(self, feats: list[torch.Tensor], size: tuple[int, ...]) -> torch.Tensor:
        """The normalised nearest-neighbour map (``patch`` / ``bottleneck``) at ``size``."""
        assert self.nearest is not None
        nn_map = self.nearest.normalised(self.nearest.distances(self._nearest_input(feats)))
        return F.interpolate(nn_map.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)

    def _combine(self, residual: torch.Tensor, nearest: torch.Tensor) -> torch.Tensor:
        """The residual and nearest maps fused (``hybrid_fusion``) on their common scale."""
        cfg = self.config
        if cfg.hybrid_scale == "tail":
            residual = (residual - self.tail[0]) / self.tail[1]
            nearest = (nearest - self.tail[2]) / self.tail[3]
        nearest = cfg.hybrid_weight * nearest
        return residual + nearest if cfg.hybrid_fusion == "sum" else torch.maximum(residual, nearest)

    def fused_map(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Fused, smoothed map at the finest level's resolution, and the raw residuals."""
        fused, res = self._residual_map(feats)
        if self.nearest is not None and self.config.hybrid != "pooled":
            fused = self._combine(fused, self._nearest_map(feats, tuple(int(v) for v in fused.shape[-2:])))
        return self.smooth(fused), res

    def _topk(self, m: torch.Tensor) -> torch.Tensor:
        flat = m.flatten(1)
        k = max(1, int(round(self.config.topk_ratio * int(flat.shape[1]))))
        return flat.topk(k, dim=1).values.mean(dim=1)

    def _base_score(self, fused: torch.Tensor, res: list[torch.Tensor]) -> torch.Tensor:
        mode = self.config.score
        flat = fused.flatten(1)
        if mode == "max":
            return flat.amax(dim=1)
        if mode == "mean":
            return flat.mean(dim=1)
        if mode == "topk":
            return self._topk(fused)
        if mode == "level-topk":
            w = self.level_weights / self.level_weights.sum()
            k = len(res)
            z = [
                (self._topk(self._level_map(r, i)) - self.score_mean[i]) / self.score_std[i] for i, r in enumerate(res)
            ]
            return cast(torch.Tensor, sum(w[i] * z[i] for i in range(k)))
        deepest = max(range(len(res)), key=lambda i: self.encoder.strides[i])
        return self.normalise(res[deepest], deepest).flatten(1).mean(dim=1)

    def image_score(self, fused: torch.Tensor, res: list[torch.Tensor], feats: list[torch.Tensor] | None = None
                    ) -> torch.Tensor:  # fmt: skip
        """The image score: from the fused map (``score``), plus the ``pooled`` hybrid term."""
        base = self._base_score(fused, res)
        if self.nearest is None or self.config.hybrid != "pooled" or feats is None:
            return base
        k = len(res)
        z = (base - self.score_mean[k]) / self.score_std[k]
        return z + self.config.hybrid_weight * self.nearest.normalised(self.nearest.distances(pooled_features(feats)))

    def predict_step(self, batch: Batch) -> ScoreOutput:
        """Images -> scores and maps at the input size; a ``FeatureBatch`` of encoder features
        already computed -> the same scores, and maps at the finest feature grid."""
        if isinstance(batch, FeatureBatch):
            fused, res = self.fused_map(batch.levels)
            return ScoreOutput(self.image_score(fused, res, batch.levels), fused)
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
        scores = self.image_score(fused, res, feats)
        size = tuple(int(v) for v in images.shape[-2:])
        maps = F.interpolate(fused.unsqueeze(1), size=size, mode="bilinear", align_corners=False)
        return scores, maps.squeeze(1)

    def input_normalisation(self) -> dict[str, list[float]]:
        return {
            "mean": [float(v) for v in self.encoder.mean.flatten()],
            "std": [float(v) for v in self.encoder.std.flatten()],
        }
