"""PatchCore (Roth et al., "Towards Total Recall in Industrial Anomaly Detection", CVPR 2022).

The reference HFR has to beat on the same frozen encoder.  Nothing is trained:

1. *Locally aware patch features*: each chosen encoder level is averaged over a
   ``patch_size`` x ``patch_size`` neighbourhood (stride 1), the deeper level is
   upsampled (bilinear) to the finer one's grid, and the levels are concatenated, so
   every position of the finer grid has one feature vector.
2. *Memory bank*: the patch features of all training images, subsampled by a greedy
   k-center coreset (``reconad.models.coreset``) to at most ``memory_budget`` vectors.
3. *Scoring*: each test patch's distance to its nearest memory feature is its anomaly
   score; the map is those distances, upsampled to the input and smoothed (Gaussian,
   ``blur_sigma`` px).  The image score is the largest patch score ``s*`` re-weighted
   as in the paper's eq. 7: with ``m_test*`` that patch, ``m*`` its nearest memory
   feature and ``N_b(m*)`` the ``num_neighbors`` memory features nearest to ``m*``,
   ``s = (1 - exp(|m_test* - m*|) / sum_{m in N_b(m*)} exp(|m_test* - m|)) * s*``
   (``score="reweighted"``).  The default ``score="topk"`` takes the mean of the top 1 %
   of the smoothed map instead (BENCHMARKS.md §19: better on every set measured).

Scoring costs O(test patches x memory size): bounded by the budget, not by the training
set.  Deviations from the paper: the per-level channel reduction of the official code
(adaptive pooling to 1024 dimensions) is skipped — the EfficientNet-Lite levels have
few channels (40 + 112 at strides 8 / 16); the coreset search runs over a random pool
(see ``reconad.models.coreset``); distances are Euclidean, computed as ``|a|^2 - 2ab + |b|^2`` in
float32 (one matrix product; exports to ONNX).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reconad.backbones import DEFAULT_LAYERS, FeaturePyramid, build_backbone, canonical_name
from reconad.data.records import Batch, FeatureBatch, ImageBatch, collate_features
from reconad.engine.step import OptimizerSpec
from reconad.errors import DataError
from reconad.models.base import AnomalyModel, ScoreOutput
from reconad.models.coreset import greedy_coreset
from reconad.models.encoder_features import FeatureCache, encode_dataset
from reconad.models.feature_maps import gaussian_blur, gaussian_kernel1d, locally_aware_patches, nearest_sq_distances
from reconad.models.patchcore.config import PatchCoreConfig

#: stage indices at strides 8 and 16 per backbone family (the paper's layer2 + layer3)
MID_LEVELS = {"efficientnet_lite": [3, 5], "resnet": [2, 3], "wide_resnet": [2, 3]}


def default_layers(backbone: str) -> list[int]:
    name = canonical_name(backbone)
    if name.startswith("efficientnet_lite"):
        return MID_LEVELS["efficientnet_lite"]
    return [int(x) for x in DEFAULT_LAYERS[name][1:3]]


class PatchCore(AnomalyModel):
    name = "patchcore"
    frozen_prefixes = ("encoder.",)
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 1, "patience": None}
    default_monitor = "none"
    #: Lite0 + Lite1 + Lite2 features joined (reconad.backbones.ensemble; cost in BENCHMARKS §24)
    presets: ClassVar[dict[str, dict[str, Any]]] = {"ensemble": {"backbone": "efficientnet_lite_ensemble"}}
    cpu_micro_batch_pixels: int | None = 256 * 256

    config: PatchCoreConfig
    encoder: FeaturePyramid
    memory: torch.Tensor
    blur: torch.Tensor

    def __init__(self, config: PatchCoreConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or PatchCoreConfig(**kwargs)
        cfg = self.config
        layers = cfg.layers if cfg.layers is not None else default_layers(cfg.backbone)
        self.encoder = build_backbone(cfg.backbone, layers=layers, weights=cfg.backbone_weights)
        dim = sum(self.encoder.channels)
        self.register_buffer("memory", torch.zeros(0, dim))
        # smoothing at the input resolution, after upsampling (the paper's order)
        self.register_buffer("blur", gaussian_kernel1d(max(cfg.blur_sigma, 1e-3)), persistent=False)

    # ------------------------------------------------------------------ training
    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        if isinstance(dataset, FeatureCache):
            return dataset
        return FeatureCache(encode_dataset(self.encoder, dataset, device, batch_size=4, progress=progress))

    def collate_fn(self) -> Callable[[list[Any]], Batch]:
        return collate_features

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {}  # nothing is trained by gradients: the engine runs no epochs

    def patch_features(self, levels: list[torch.Tensor]) -> torch.Tensor:
        """(B, h, w, D) locally aware patch features on the finest chosen level's grid."""
        return locally_aware_patches(levels, self.config.patch_size)

    @torch.no_grad()
    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """Build the memory bank: every training patch, then the greedy coreset."""
        chunks = []
        for batch in DataLoader(train_data, batch_size=32, shuffle=False, collate_fn=collate_features):
            p = self.patch_features([f.to(device) for f in batch.levels])
            chunks.append(p.flatten(0, 2).cpu())
        bank = torch.cat(chunks)
        cfg = self.config
        size = max(1, min(cfg.memory_budget, int(round(cfg.coreset_ratio * len(bank)))))
        idx = greedy_coreset(bank, size, cfg.projection_dim, cfg.pool_factor, cfg.coreset_seed)
        self.memory = bank.index_select(0, idx).to(self.blur.device)

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "memory" in state:  # the coreset's size depends on the training data
            self.memory = torch.empty_like(state["memory"], device=self.blur.device)
        super().load_trainable_state_dict(state)

    # ------------------------------------------------------------------- scoring
    def _score_levels(self, levels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores (B,) and patch-distance maps (B, h, w) from encoder levels (batched,
        no Python loop over images, so the exported graph keeps a free batch axis)."""
        if self.memory.shape[0] == 0:
            raise DataError("this patchcore model has an empty memory bank: fit() it first")
        feats = self.patch_features(levels)
        b, h, w, dim = feats.shape
        patches = feats.reshape(b * h * w, dim)
        best, idx = nearest_sq_distances(patches, self.memory)
        dist = best.sqrt().view(b, h * w)
        idx = idx[:, 0]
        top = dist.argmax(dim=1)  # the most anomalous patch of each image
        s_star = dist.gather(1, top[:, None])[:, 0]
        k = min(self.config.num_neighbors, int(self.memory.shape[0]))
        if k <= 1 or self.config.score != "reweighted":
            return s_star, dist.view(b, h, w)
        flat_top = torch.arange(b, device=top.device) * (h * w) + top
        m_star = self.memory.index_select(0, idx.index_select(0, flat_top))  # (B, D)
        neigh = nearest_sq_distances(m_star, self.memory, k)[1]  # (B, k)
        test = patches.index_select(0, flat_top)  # (B, D)
        d = ((self.memory[neigh] - test[:, None, :]) ** 2).sum(-1).clamp_min(0).sqrt()  # (B, k); d[:, 0] is m*
        weight = 1.0 - torch.softmax(d, dim=1)[:, 0]
        return weight * s_star, dist.view(b, h, w)

    def _smooth(self, m: torch.Tensor) -> torch.Tensor:
        return m if self.config.blur_sigma <= 0 else gaussian_blur(m, self.blur.to(m.dtype))

    def _to_input(self, grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Patch distances upsampled to the input size, then smoothed (the paper's order)."""
        size = (int(size[0]), int(size[1]))
        return self._smooth(
            F.interpolate(grid.unsqueeze(1), size=size, mode="bilinear", align_corners=False).squeeze(1)
        )

    def _map_score(self, scores: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """The image score from the smoothed map (``map-max``, ``topk``) or the patch scores."""
        flat = maps.flatten(1)
        if self.config.score == "map-max":
            return flat.amax(dim=1)
        if self.config.score == "topk":
            k = max(1, int(round(self.config.topk_ratio * int(flat.shape[1]))))
            return flat.topk(k, dim=1).values.mean(dim=1)
        return scores

    def _score_images(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores, grid = self._score_levels(self.encoder(images))
        maps = self._to_input(grid, (int(images.shape[-2]), int(images.shape[-1])))
        return self._map_score(scores, maps), maps

    def predict_step(self, batch: Batch) -> ScoreOutput:
        """Images -> scores and maps at the input size; a ``FeatureBatch`` -> the same, at the
        size the features came from (patch grid x its stride)."""
        if isinstance(batch, FeatureBatch):
            scores, grid = self._score_levels(batch.levels)
            stride = min(self.encoder.strides)
            maps = self._to_input(grid, (grid.shape[-2] * stride, grid.shape[-1] * stride))
            return ScoreOutput(self._map_score(scores, maps), maps)
        if not isinstance(batch, ImageBatch):
            raise TypeError(f"patchcore scores images or encoder features, got {type(batch).__name__}")
        chunk = self.micro_batch(batch.image)
        parts = (
            [self._score_images(x) for x in batch.image.split(chunk)] if chunk else [self._score_images(batch.image)]
        )
        return ScoreOutput(torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]))

    def input_normalisation(self) -> dict[str, list[float]]:
        return {
            "mean": [float(v) for v in self.encoder.mean.flatten()],
            "std": [float(v) for v in self.encoder.std.flatten()],
        }
