"""Settings of ALOCC (adversarially learned one-class classifier)."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.gan import NORMS, GANConfig, check_choice, check_weights

SCORES = ("rec", "d_rx", "d_x")


@dataclass
class ALOCCConfig(GANConfig):
    """ALOCC settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    noise_std: sigma of the Gaussian noise N(0, sigma^2) added to the training images
    before the reconstructor R sees them, in [0, 1] image units (0.155, the official
    code's); the noisy image is clipped back to the valid range.
    w_rec: lambda, the weight of R's reconstruction term lambda·||X - R(X~)||^2 beside
    its adversarial term (0.4, the paper's).
    r_steps: updates of R per discriminator update (2, the official code's, so that D
    does not win; the paper's 1 made the score swing from seed to seed on the test
    suite's toy problem).
    score: ``rec`` (default: R's reconstruction error ||x - R(x)||^2, the mean over the
    pixels), ``d_rx`` (1 - D(R(x)), the paper's detector) or ``d_x`` (1 - D(x), the
    paper's baseline with the discriminator alone).  The paper's score is not the
    default because D is trained to call R's outputs *fake*: once D tells them from
    real images, 1 - D(R(x)) is high for every reconstruction of a normal image, and
    how it ranks the images R has never seen depends on which artefacts D keyed on
    (on one-class MNIST-10k it ranked 6 classes of 10 below chance, and its sign
    changed with the epoch count, BENCHMARKS §13.1).  R's own error does not depend on
    D's verdict: D shapes R during training, and R's error scores.
    d_norm: D's normalisation, ``layer`` (default), ``batch`` (DCGAN's) or ``none``.  D
    sees batches of real and of reconstructed images separately; with batch statistics
    it can tell them apart by those alone, and at test time (running statistics of the
    mix) it scores like neither: the toy problem's AUROC spread twice as much over seeds.
    width: channels of the first conv stage of R and D (32; the official code's 16 for
    D, 32 for R's encoder).  R is fully convolutional: ``latent_dim`` and ``hidden`` are
    not used.  Images only.
    """

    noise_std: float = 0.155
    w_rec: float = 0.4
    r_steps: int = 2
    score: str = "rec"
    d_norm: str = "layer"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self, "noise_std", "w_rec")
        check_types(self, integers=("r_steps",))
        if self.r_steps < 1:
            raise ConfigError(f"r_steps must be >= 1, got {self.r_steps}")
        check_choice("score", self.score, SCORES)
        check_choice("d_norm", self.d_norm, NORMS)
