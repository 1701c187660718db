"""Settings of ADAE (adversarial dual autoencoders)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reconad.models.adversarial import NORMS, GANConfig, check_choice, check_weights

SCORES = ("g", "l2", "l1")


@dataclass
class ADAEConfig(GANConfig):
    """ADAE settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    score: ``g`` (default: G's own residual, mean squared ||x - G(x)||^2 per element),
    or the paper's residual of D's reconstruction of G's output, ``l2`` (mean squared
    ||x - D(G(x))||^2 per element, the paper's L2 score up to a monotone map) or ``l1``
    (mean |x - D(G(x))|).  The paper's score is not the default: D is trained to
    reconstruct real images *badly* once G has drawn them, so for a normal image
    D(G(x)) is spoilt on purpose, and how far it is spoilt depends on how the game
    stands, not on the image (BENCHMARKS §13.1: it followed ink, 0.36 on MNIST-10k's
    zeros).  G's residual needs no verdict from D: D shapes G during training, G scores.
    w_fake: k, the weight of D's second term, L_D = ||X - D(X)||_1 - k·||G(X) - D(G(X))||_1;
    0.5 (the paper's loss has 1).  Once G reconstructs well, G(X) is close to X and the
    paper's L_D is about 0 whether D reconstructs everything or nothing; with k = 1 runs
    on the test suite's toy problems often ended with a D that reconstructs nothing, whose
    residual then ranks at random or upside down.  With k < 1 reconstructing real images
    pays, as with BEGAN's balance term k_t (which this is, held constant).
    norm: normalisation in both image autoencoders, ``layer`` (default), ``batch`` or
    ``none``.  Each network sees batches of real and of generated images separately;
    with batch statistics it can tell the two kinds apart by them alone, and at test
    time (running statistics of the mix) it behaves like neither.
    lr_d: the discriminator autoencoder D's learning rate, 2e-4, a fifth of G's (the
    engine's ``lr``, 1e-3 for this model): G has to keep up with D, or D learns to spoil
    everything G makes and its residual stops separating anything.  lr_g, betas_g: G's;
    betas_d: D's.
    latent_dim: the bottleneck of the row autoencoders; None = 32.  Image autoencoders
    are fully convolutional (``latent_dim`` unused).  hidden: the MLP's hidden sizes for
    rows (default [64]).  width: 32.
    """

    score: str = "g"
    w_fake: float = 0.5
    norm: str = "layer"
    lr_d: float | None = 2e-4

    image_latent: ClassVar[int] = 100
    table_latent: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("score", self.score, SCORES)
        check_weights(self, "w_fake")
        check_choice("norm", self.norm, NORMS)
