"""Settings of Skip-GANomaly."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.gan import GANConfig, check_weights


@dataclass
class SkipGANomalyConfig(GANConfig):
    """Skip-GANomaly settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    w_adv, w_con, w_lat: weights of the adversarial (BCE), contextual (L1 reconstruction)
    and latent (discriminator-feature L2) losses of the generator; the paper's 1 / 40 / 1.
    score_weight: lambda of the score lambda·R(x) + (1 - lambda)·L(x); the paper's 0.9.
    skip_levels: how many of the U-Net's skips carry the encoder map, counted from the
    bottleneck; the shallower ones carry zeros.  None (default) = all, the paper's U-Net;
    0 = none, a plain encoder-decoder through the ``min_size`` map.  Kept to measure what
    the skips do: on one-class MNIST-10k's eights (28 px) the score ranked 0.37 with all,
    0.23 with the deepest alone and 0.42 with none, so the skips are not the only way the
    network redraws other digits: the 3 x 3 x 128 map at the bottom does it too
    (BENCHMARKS §21.8).
    width: channels of the first conv stage (32; the paper's U-Net uses 64).
    Images only (``latent_dim`` and ``hidden`` are not used: the U-Net has no code vector).
    """

    w_adv: float = 1.0
    w_con: float = 40.0
    w_lat: float = 1.0
    score_weight: float = 0.9
    skip_levels: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self, "w_adv", "w_con", "w_lat", "score_weight")
        check_types(self, integers=("skip_levels",), optional=("skip_levels",))
        if self.skip_levels is not None and self.skip_levels < 0:
            raise ConfigError(f"skip_levels must be >= 0, got {self.skip_levels}")
        if self.score_weight > 1:
            raise ConfigError(f"score_weight must be in [0, 1], got {self.score_weight}")
