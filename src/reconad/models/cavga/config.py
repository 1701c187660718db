"""Settings of CAVGA (convolutional adversarial VAE with guided attention)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.gan import GANConfig, check_choice, check_weights

VARIANTS = ("u", "w")


@dataclass
class CAVGAConfig(GANConfig):
    """CAVGA settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    variant: ``u`` (unsupervised: attention expansion loss, scored by the reconstruction
    error) or ``w`` (weakly supervised: a classifier on z trained on a few labelled
    anomalies, ``fit(images, y)``, with the complementary guided attention loss; scored
    by the classifier's anomaly probability).
    w_r, w_adv: weights of the VAE loss and the adversarial loss (1 and 1, both variants).
    w_ae: weight of the attention expansion loss (variant u; 0.01).
    w_c, w_cga: weights of the classifier's BCE and the complementary guided attention
    loss (variant w; 0.001 and 0.01).
    latent_dim: channels of the convolutional latent z; None = 32.
    min_size: the encoder halves the image until its longer side is at most this, which
    is the latent map's (and the attention map's) resolution: 8 (an 8x8 map at 64-256 px).
    min_stages: but it halves at least this many times (3), while the shorter side is at
    least 4 px: a 28 px digit gets a 3x3 map, a 32 px image 4x4.  With two halvings (a
    7x7 map of 32 channels, more numbers than the 28x28 image has) the VAE redrew any
    digit and its error ranked MNIST-10k classes 0, 2 and 8 at 0.631, 0.354 and 0.413;
    with three, 0.824, 0.641 and 0.728 (BENCHMARKS §13.1).  64 px and larger images have
    three halvings already, so their maps are unchanged.
    """

    variant: str = "u"
    w_r: float = 1.0
    w_adv: float = 1.0
    w_ae: float = 0.01
    w_c: float = 0.001
    w_cga: float = 0.01
    min_size: int = 8
    min_stages: int = 3

    image_latent: ClassVar[int] = 32
    #: model files saved before ``min_stages`` existed were built with min_size alone
    legacy_values: ClassVar[dict[str, Any]] = {"min_stages": 1}

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("variant", self.variant, VARIANTS)
        check_weights(self, "w_r", "w_adv", "w_ae", "w_c", "w_cga")
        check_types(self, integers=("min_stages",))
        if self.min_stages < 1:
            raise ConfigError(f"min_stages must be >= 1, got {self.min_stages}")
