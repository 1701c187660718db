"""Settings of the hierarchical feature reconstruction model (HFR)."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.base import ModelConfig

RESIDUALS = ("cosine", "l2", "cosine+l2")
SCORES = ("max", "topk", "mean", "deep-mean", "level-topk")
NORMALIZATIONS = ("level", "position", "none")
NORMALIZE_ON = ("held-out", "training")
HYBRIDS = ("none", "patch", "bottleneck", "pooled")
HYBRID_FUSIONS = ("sum", "max")
HYBRID_SCALES = ("moments", "tail")
DENOISE = ("none", "synthetic")


@dataclass
class HFRConfig(ModelConfig):
    """HFR settings.

    backbone / layers / backbone_weights: the frozen encoder (see ``reconad.backbones``).
    width / bottleneck: decoder widths; the bottleneck sits at the deepest level's
    resolution with ``bottleneck`` channels, fewer than the encoder gives, so the
    decoder must model normal features instead of copying them; ``bottleneck_pool``
    pools the bottleneck further (2 halves its resolution), for anomalies that only
    show in a wider context.
    feature_noise: std of Gaussian noise (relative to each channel's std) added to the
    encoder features during training only (a denoising objective).
    residual: per-level residual; ``cosine`` = 1 - cos(f, f_hat) over channels.
    normalization: ``level`` (one mean/std per level, from held-out normals) or
    ``position`` (a mean/std map per level, for aligned objects).
    normalize_on: which normal images the normalisation (and the other score
    statistics) are fitted on: ``held-out`` (the validation split; the training images
    when it has fewer than 2) or ``training`` (every normal training image: steadier
    with few images, the same for models trained on nested subsets; BENCHMARKS §22).
    level_weights: weights of the normalised per-level maps in the fused map, finest
    first.  Default (None) 1, 2, 4, ... doubling per level: the finest level's residual is the noisiest on busy
    textures; weighting deeper levels more raised pixel AUROC on every set we measured
    (BENCHMARKS.md, ablation).
    blur_sigma: Gaussian smoothing of the fused map, in input pixels.
    score: image score from the fused map: ``max``, ``topk`` (mean of the top
    ``topk_ratio`` share of pixels), ``mean``; or ``deep-mean`` (mean residual of the
    deepest level; suited to semantic, whole-image anomalies) or ``level-topk`` (the
    top share of each normalised level map, fused after normalising each level's image
    score on held-out normals).  Default ``topk`` with 1 %: as good as or better than
    ``max`` on every set we measured, and less sensitive to a single noisy pixel.
    hybrid: add a nearest-neighbour term (``nearest.py``) to the residual:
    ``patch`` (distance of each locally aware encoder patch feature, levels at stride
    >= 8, to a coreset of the training patches: PatchCore's term, in the map),
    ``bottleneck`` (the same on the decoder's own bottleneck codes, in the map) or
    ``pooled`` (mean distance of the image's pooled encoder features to its
    ``hybrid_k`` nearest training images: the kNN baseline's term, in the image score
    only); ``none`` is plain HFR.  Each term is normalised on held-out normals and
    enters with ``hybrid_weight``; the bank keeps at most ``hybrid_budget`` vectors.
    Default ``bottleneck`` at weight 0.5: over three seeds it lifted the tiles by 0.056
    image / 0.046 pixel AUROC and grass by 0.029 / 0.011, and moved gravel and brick by
    less than 0.01 (BENCHMARKS §24.2); ``patch`` and ``pooled`` lost more on gravel, and
    weight 1 lost on both busy textures (§12.6).  It adds about a fifth of the model's
    FLOPs (the codes are 64 numbers on the stride-16 grid).
    hybrid_fusion / hybrid_scale: how a map term (``patch``, ``bottleneck``) meets the
    residual map: ``sum`` adds them, ``max`` keeps the larger at each position (a defect
    either term sees stays in the map at full strength, instead of being averaged with
    the other term's normal-looking value).  Each map is first put on a common scale on
    held-out normals: ``moments`` (its mean and standard deviation) or ``tail``
    (``(x - median) / (q99 - median)``: 1 is the normal 99th percentile of that map, so
    two maps with different tails are compared where defects show).
    memory_slots: > 0 puts a memory of that many slots on the bottleneck (MemAE's
    module: each position is rebuilt from a sparse mix of learned normal prototypes,
    softmax over cosine / ``memory_temperature``, hard shrinkage at 1/N), trained with
    ``memory_entropy`` times the addressing entropy.
    anomaly_margin / anomaly_weight: labelled anomalies (``fit(images, y)``, masks when
    given) train with a deviation loss: the normalised residual inside a defect (the
    whole image without a mask) is pushed above ``anomaly_margin`` standard deviations
    of the normal residual, weighted by ``anomaly_weight``; normal pixels keep the
    reconstruction loss.
    denoise: ``synthetic`` trains the decoder to output the clean features from the
    features of an image with a pasted synthetic defect (``denoise.py``):
    ``denoise_copies`` corrupted copies of each training image are encoded once, and an
    item's input is one of them with probability ``denoise_prob``, and the loss adds
    ``denoise_weight`` times the mean residual inside the pasted defects; ``none``
    (default) trains on clean inputs only.  Training only: scoring does not change.
    """

    backbone: str = "efficientnet_lite0"
    layers: list[int] | None = None
    backbone_weights: str | None = None
    width: int = 128
    bottleneck: int = 64
    bottleneck_pool: int = 1
    feature_noise: float = 0.0
    residual: str = "cosine"
    level_weights: list[float] | None = None
    normalization: str = "level"
    normalize_on: str = "held-out"
    blur_sigma: float = 4.0
    score: str = "topk"
    topk_ratio: float = 0.01
    hybrid: str = "bottleneck"
    hybrid_weight: float = 0.5
    hybrid_budget: int = 8192
    hybrid_k: int | None = None
    memory_slots: int = 0
    memory_temperature: float = 0.01
    memory_entropy: float = 0.0002
    anomaly_margin: float = 5.0
    anomaly_weight: float = 1.0
    hybrid_fusion: str = "sum"
    hybrid_scale: str = "moments"
    denoise: str = "none"
    denoise_copies: int = 2
    denoise_prob: float = 0.5
    denoise_weight: float = 1.0

    def __post_init__(self) -> None:
        check_types(
            self,
            integers=("width", "bottleneck", "bottleneck_pool", "hybrid_budget", "hybrid_k", "memory_slots"),
            numbers=(
                "feature_noise",
                "blur_sigma",
                "topk_ratio",
                "hybrid_weight",
                "memory_temperature",
                "memory_entropy",
                "anomaly_margin",
                "anomaly_weight",
            ),
            optional=("hybrid_k",),
        )
        if self.hybrid not in HYBRIDS:
            raise ConfigError(f"unknown hybrid {self.hybrid!r}; choose one of {', '.join(HYBRIDS)}")
        if self.hybrid_fusion not in HYBRID_FUSIONS or self.hybrid_scale not in HYBRID_SCALES:
            raise ConfigError(
                f"unknown hybrid_fusion {self.hybrid_fusion!r} or hybrid_scale {self.hybrid_scale!r}; "
                f"choose {' or '.join(HYBRID_FUSIONS)} and {' or '.join(HYBRID_SCALES)}"
            )
        if self.hybrid_budget < 1 or (self.hybrid_k is not None and self.hybrid_k < 1):
            raise ConfigError("hybrid_budget and hybrid_k must be >= 1")
        if self.memory_slots < 0 or self.memory_slots == 1:
            raise ConfigError(f"memory_slots must be 0 (off) or >= 2, got {self.memory_slots}")
        if self.memory_temperature <= 0 or self.memory_entropy < 0 or self.anomaly_weight < 0:
            raise ConfigError("memory_temperature must be > 0; memory_entropy and anomaly_weight >= 0")
        self._check_denoise()
        for name, value, allowed in (
            ("residual", self.residual, RESIDUALS),
            ("normalization", self.normalization, NORMALIZATIONS),
            ("normalize_on", self.normalize_on, NORMALIZE_ON),
            ("score", self.score, SCORES),
        ):
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if self.bottleneck_pool < 1:
            raise ConfigError(f"bottleneck_pool must be >= 1, got {self.bottleneck_pool}")
        if self.width < 8 or self.bottleneck < 1:
            raise ConfigError("width must be >= 8 and bottleneck >= 1")
        if not 0 < self.topk_ratio <= 1:
            raise ConfigError(f"topk_ratio must be in (0, 1], got {self.topk_ratio}")
        if self.feature_noise < 0 or self.blur_sigma < 0:
            raise ConfigError("feature_noise and blur_sigma must be >= 0")
        try:
            if self.layers is not None:
                self.layers = [int(x) for x in self.layers]
            if self.level_weights is not None:
                self.level_weights = [float(w) for w in self.level_weights]
        except (TypeError, ValueError):
            raise ConfigError(
                f"layers and level_weights must be lists of numbers, got {self.layers!r} and {self.level_weights!r}"
            ) from None
        if self.level_weights is not None and (
            not self.level_weights or min(self.level_weights) < 0 or sum(self.level_weights) <= 0
        ):
            raise ConfigError(f"level_weights must be >= 0 with a positive sum, got {self.level_weights}")

    def _check_denoise(self) -> None:
        check_types(self, integers=("denoise_copies",), numbers=("denoise_prob", "denoise_weight"))
        if self.denoise not in DENOISE:
            raise ConfigError(f"unknown denoise {self.denoise!r}; choose one of {', '.join(DENOISE)}")
        if self.denoise_copies < 1:
            raise ConfigError(f"denoise_copies must be >= 1, got {self.denoise_copies}")
        if not 0 < self.denoise_prob <= 1:
            raise ConfigError(f"denoise_prob must be in (0, 1], got {self.denoise_prob}")
        if self.denoise_weight < 0:
            raise ConfigError(f"denoise_weight must be >= 0, got {self.denoise_weight}")
