"""Settings of ADAE (adversarial dual autoencoders)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from reconad.models.gan import NORMS, GANConfig, check_choice, check_weights

SCORES = ("g", "l2", "l1")


@dataclass
class ADAEConfig(GANConfig):
    """ADAE settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    score: the residual of the discriminator's reconstruction of the generator's output,
    ``l2`` (mean squared ||x - D(G(x))||^2 per element, the paper's L2 score up to a
    monotone map) or ``l1`` (mean |x - D(G(x))|, the mean of the map); or ``g``, G's
    own residual (mean squared ||x - G(x)||^2), which needs no reconstruction from D.
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
    lr_d: the discriminator autoencoder D's learning rate; None (default) = G's, the
    engine's ``lr`` (1e-3 for this model).  It was 2e-4, a fifth of G's, and then D did
    not learn to reconstruct anything in the few hundred steps a one-class set gives:
    the score ||x - D(G(x))|| measured how much ink D failed to draw, and ranked some
    classes upside down (BENCHMARKS §13.1, §21; the test suite's digits, class 1: 0.08
    before, 0.97 after).  lr_g, betas_g: G's; betas_d: D's.
    latent_dim: the bottleneck of the row autoencoders; None = 32.  Image autoencoders
    are fully convolutional (``latent_dim`` unused).  hidden: the MLP's hidden sizes for
    rows (default [64]).  width: 32.
    """

    score: str = "l2"
    w_fake: float = 0.5
    norm: str = "layer"
    lr_d: float | None = None

    image_latent: ClassVar[int] = 100
    table_latent: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("score", self.score, SCORES)
        check_weights(self, "w_fake")
        check_choice("norm", self.norm, NORMS)
