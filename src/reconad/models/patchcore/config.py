"""Settings of the PatchCore reference model."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.engine.config import check_types, int_list
from reconad.errors import ConfigError
from reconad.models.base import ModelConfig

SCORES = ("reweighted", "max", "map-max", "topk")


@dataclass
class PatchCoreConfig(ModelConfig):
    """PatchCore settings (Roth et al., CVPR 2022).

    backbone / layers / backbone_weights: the frozen encoder (``reconad.backbones``);
    ``layers=None`` takes the two levels at strides 8 and 16 (EfficientNet-Lite stages
    3 and 5, ResNet ``layer2`` and ``layer3``), the paper's choice of mid-level features.
    patch_size: the neighbourhood each patch feature averages over (3, as the paper).
    memory_budget / coreset_ratio: the memory bank keeps at most ``memory_budget``
    patch features, and at most ``coreset_ratio`` of all training patches (the paper
    uses ratios of 1-25 %; a fixed budget keeps memory and scoring time bounded however
    many images are trained on).
    pool_factor: above ``pool_factor x budget`` training patches the greedy search runs in
    two stages: local coresets of chunks of the bank make a pool of that size, then one
    greedy pass over the pool (see ``reconad.models.coreset``).
    projection_dim: dimension of the random projection the coreset distances use (the
    paper's Johnson-Lindenstrauss step; 128).
    num_neighbors: b, the memory neighbours of the nearest memory feature used to
    re-weight the image score (paper eq. 7); 1 turns the re-weighting off.
    score: ``topk`` (the default: the mean of the top ``topk_ratio`` share of the smoothed
    map's pixels; a defect larger than one patch counts by its extent, a single noisy
    patch less; it beat the paper's re-weighted maximum on the tiles and on every
    texture, BENCHMARKS.md §19), ``reweighted`` (the paper's eq. 7), ``max`` (the largest
    patch distance, s*) or ``map-max`` (the largest value of the smoothed map).
    topk_ratio: the share of pixels ``topk`` averages (0.01).
    blur_sigma: Gaussian smoothing of the patch-distance map, in input pixels (4).
    coreset_seed: seed of the coreset's start points and projection.
    """

    backbone: str = "efficientnet_lite0"
    layers: list[int] | None = None
    backbone_weights: str | None = None
    patch_size: int = 3
    memory_budget: int = 8192
    coreset_ratio: float = 0.1
    pool_factor: int = 4
    projection_dim: int = 128
    num_neighbors: int = 9
    score: str = "topk"
    blur_sigma: float = 4.0
    coreset_seed: int = 0
    topk_ratio: float = 0.01

    def __post_init__(self) -> None:
        check_types(
            self,
            integers=("patch_size", "memory_budget", "pool_factor", "projection_dim", "num_neighbors", "coreset_seed"),
            numbers=("coreset_ratio", "blur_sigma", "topk_ratio"),
        )
        if self.patch_size < 1 or self.patch_size % 2 == 0:
            raise ConfigError(f"patch_size must be an odd number >= 1, got {self.patch_size}")
        if self.memory_budget < 1 or self.pool_factor < 1 or self.projection_dim < 1 or self.num_neighbors < 1:
            raise ConfigError("memory_budget, pool_factor, projection_dim and num_neighbors must be >= 1")
        if not 0 < self.coreset_ratio <= 1:
            raise ConfigError(f"coreset_ratio must be in (0, 1], got {self.coreset_ratio}")
        if self.score not in SCORES:
            raise ConfigError(f"unknown score {self.score!r}; choose one of {', '.join(SCORES)}")
        if not 0 < self.topk_ratio <= 1:
            raise ConfigError(f"topk_ratio must be in (0, 1], got {self.topk_ratio}")
        if self.blur_sigma < 0:
            raise ConfigError(f"blur_sigma must be >= 0, got {self.blur_sigma}")
        if self.layers is not None:
            self.layers = int_list("layers", self.layers, "stage numbers")
