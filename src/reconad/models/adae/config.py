"""Settings of ADAE (adversarial dual autoencoders)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from reconad.errors import ConfigError
from reconad.models.gan import NORMS, GANConfig, check_choice, check_weights

SCORES = ("g", "l2", "l1")


@dataclass
class ADAEConfig(GANConfig):
    """ADAE settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    score: ``g`` (G's own residual, mean squared ||x - G(x)||^2) or the paper's
    residual of D's reconstruction of G's output, ``l2`` (mean squared ||x - D(G(x))||^2,
    the paper's L2 score up to a monotone map) or ``l1`` (mean |x - D(G(x))|).  None
    (default) = ``g`` for images, ``l2`` for rows.  Why not the paper's for images: D's
    loss rewards failing on G's outputs without bound, so D either learns to draw
    something far from them or collapses to one image for every input (one-class
    MNIST-10k, sevens: D(G(x)) varied by 0.0002 over 2,000 test images).  Then
    ||x - D(G(x))|| is the distance of x to a fixed image, a function of the ink alone
    (Spearman -1.00 with ink) and ranked sevens at 0.36, twos at 0.45 (BENCHMARKS §21.7).
    G is trained to reconstruct, and its residual does not depend on D's verdict.
    w_rec: the weight of G's reconstruction term ||X - G(X)||_1 beside ||G(X) - D(G(X))||_1;
    None (default) = 10 for images, 1 (the paper's) for rows.  With 1, G gives up
    reconstructing and escapes D by drawing one saturated image for every input (its
    reconstruction error rose from 0.34 to 1.5 during training on the sevens), and both
    residuals then measure ink.
    image_code: True (default): the image encoder ends in a code of ``latent_dim``
    numbers, 32, and the decoder starts from it, as the family's DCGAN encoder and
    generator; False: fully convolutional, through the smallest conv map (3 x 3 x 128 =
    1,152 numbers for a 784-pixel digit).  Through the map, G redraws every digit about equally well
    and its residual ranks by how hard a digit is to redraw: eights 0.38 through the map,
    0.75 through the code (both with ``w_rec`` 10).  ``score="l2", w_rec=1,
    image_code=False`` is the paper's form (and how files saved before these settings
    load).
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
    latent_dim: the code of the autoencoders (rows, and images with ``image_code``);
    None = 32.  hidden: the MLP's hidden sizes for
    rows (default [64]).  width: 32.
    """

    score: str | None = None
    w_rec: float | None = None
    w_fake: float = 0.5
    norm: str = "layer"
    lr_d: float | None = None
    image_code: bool = True

    image_latent: ClassVar[int] = 32
    table_latent: ClassVar[int] = 32
    #: what files saved before these settings existed were built with (the paper's form)
    legacy_values: ClassVar[dict[str, Any]] = {"score": "l2", "w_rec": 1.0, "image_code": False}

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.score is not None:
            check_choice("score", self.score, SCORES)
        if self.w_rec is not None:
            check_weights(self, "w_rec")
        check_weights(self, "w_fake")
        check_choice("norm", self.norm, NORMS)
        if not isinstance(self.image_code, bool):
            raise ConfigError(f"image_code must be true or false, got {self.image_code!r}")

    def resolved_score(self) -> str:
        """``score``; None = ``g`` for images, ``l2`` (the paper's) for rows."""
        return self.score if self.score is not None else ("l2" if self.is_table else "g")

    def resolved_w_rec(self) -> float:
        """``w_rec``; None = 10 for images, 1 (the paper's) for rows."""
        return float(self.w_rec) if self.w_rec is not None else (1.0 if self.is_table else 10.0)
