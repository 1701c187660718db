"""Settings of RSRAE (autoencoder with a robust subspace recovery layer)."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.errors import ConfigError
from reconad.models.gan import check_choice, check_weights
from reconad.models.networks import NetConfig

SCORES = ("auto", "cosine", "l2")
TRAININGS = ("alternating", "joint")


@dataclass
class RSRAEConfig(NetConfig):
    """RSRAE settings (plus the shared ``NetConfig`` network settings).

    latent_dim: d, the dimension of the recovered subspace (the RSR layer A is d x D,
    D the size of the flattened encoder output); None = 10 (the official code's).
    lambda1, lambda2: weights of L_RSR's two terms, sum_i ||z_i - A^T A z_i||_2 and
    ||A A^T - I_d||_F^2; 0.1 each (the official defaults).
    training: ``alternating`` (RSRAE: per batch one step on L_AE over encoder, A and
    decoder, then one on lambda2·L_RSR2 over A and one on lambda1·L_RSR1 over encoder and
    A, both at ``lr_rsr``) or ``joint`` (RSRAE+: one step on L_AE + L_RSR at the
    engine's ``lr``).
    lr_rsr: the learning rate of the two RSR steps, 2.5e-3: ten times the autoencoder's
    default 2.5e-4 (the engine's ``lr``), as the official code; None = the engine's lr.
    renormalize: put z~ = A z on the unit sphere before the decoder (on, as the official
    experiments).
    score: ``cosine`` (1 - cos(x, x_hat), the official experiments') or ``l2``
    (the root of the mean squared residual, ||x - x_hat||_2 up to a constant);
    ``auto`` (default): cosine for images, l2 for table rows.  On z-scored rows an
    outlier is mostly a row of large values, reproduced in direction but not in size,
    and the cosine ranks it as normal: on the tabular protocol (BENCHMARKS §13) cosine
    gave AUROC 0.467 / 0.187 / 0.352 on cardio / thyroid / WBC, l2 0.919 / 0.969 / 0.986.
    hidden: the row encoder's hidden sizes (default [32, 64, 128], the official
    network's; the decoder mirrors them).  width: channels of the first conv stage (32,
    the first of the official 32 / 64 / 128).
    """

    lambda1: float = 0.1
    lambda2: float = 0.1
    training: str = "alternating"
    lr_rsr: float | None = 2.5e-3
    renormalize: bool = True
    score: str = "auto"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self, "lambda1", "lambda2")
        check_choice("training", self.training, TRAININGS)
        check_choice("score", self.score, SCORES)
        if not isinstance(self.renormalize, bool):
            raise ConfigError(f"renormalize must be true or false, got {self.renormalize!r}")
        lr = self.lr_rsr
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
            raise ConfigError(f"lr_rsr must be a number > 0 (or null for the engine's lr), got {lr!r}")

    def resolved_latent(self) -> int:
        return self.latent_dim if self.latent_dim is not None else 10

    def resolved_hidden(self) -> list[int]:
        return list(self.hidden) if self.hidden is not None else [32, 64, 128]
