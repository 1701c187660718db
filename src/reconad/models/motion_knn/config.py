"""Settings of the frame model with motion (``motion_knn``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reconad.engine.config import check_types, int_list
from reconad.errors import ConfigError
from reconad.models.base import ModelConfig


@dataclass
class MotionKNNConfig(ModelConfig):
    """A frozen ImageNet encoder on every frame, a nearest-neighbour distance over cells.

    backbone / layers / backbone_weights: the frozen encoder (``reconad.backbones``);
    ``layers=None`` takes EfficientNet-Lite stages 3 and 5 (strides 8 and 16).  Every
    level is averaged onto the coarsest level's grid: one cell per 16 x 16 pixels.
    offsets: the frame distances d of the motion statistics.  For each d a cell gets three
    numbers: the mean absolute change of each level's features since frame t - d, and of
    the grey level.  Causal: a frame never sees a later one.
    motion_weight: the weight of the motion statistics against the appearance features,
    both first scaled to unit mean spread over the training cells; 0 = appearance alone.
    The default 2 was chosen on the training clips alone: objects pasted into held-out
    training clips, moving at 6 px a frame, were found best at 2 among 0-4
    (``benchmarks/motion_knn_weights.py``, BENCHMARKS.md §8.2).
    bank_size: training cells kept (a seeded random draw) as the normal bank.
    smooth: the side of the box filter over the cell-distance map (zero borders).
    ema: the causal temporal filter of the frame score, s_t = ema s_(t-1) + (1 - ema) x_t;
    0 = none.
    bank_seed: the draw of the bank's cells.
    input_shape: [C, T, H, W] of the training windows (set by the Detector).
    """

    backbone: str = "efficientnet_lite0"
    layers: list[int] | None = None
    backbone_weights: str | None = None
    offsets: list[int] = field(default_factory=lambda: [1, 2, 4])
    motion_weight: float = 2.0
    bank_size: int = 20000
    smooth: int = 3
    ema: float = 0.5
    bank_seed: int = 0
    input_shape: list[int] | None = None

    def __post_init__(self) -> None:
        check_types(self, integers=("bank_size", "smooth", "bank_seed"), numbers=("motion_weight", "ema"))
        self.offsets = int_list("offsets", self.offsets, "frame distances")
        if not self.offsets or min(self.offsets) < 1:
            raise ConfigError(f"offsets must be frame distances >= 1, got {self.offsets}")
        if self.bank_size < 1:
            raise ConfigError(f"bank_size must be >= 1, got {self.bank_size}")
        if self.smooth < 1 or self.smooth % 2 == 0:
            raise ConfigError(f"smooth must be an odd number >= 1, got {self.smooth}")
        if not 0 <= self.ema < 1:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}")
        if self.motion_weight < 0:
            raise ConfigError(f"motion_weight must be >= 0, got {self.motion_weight}")
        if self.layers is not None:
            self.layers = int_list("layers", self.layers, "stage numbers")

    @property
    def history(self) -> int:
        """How many earlier frames a frame's motion statistics look back."""
        return max(self.offsets)
