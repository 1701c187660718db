"""Settings every adversarial model shares, and the checks their configs use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.networks import NetConfig

NORMS = ("batch", "layer", "none")


def check_betas(name: str, betas: Any) -> list[float]:
    """Two Adam betas in [0, 1) as floats, else ConfigError."""
    ok = (
        isinstance(betas, (list, tuple))
        and len(betas) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
    )
    if not ok:
        raise ConfigError(f"{name} must be two numbers in [0, 1), got {betas!r}")
    return [float(b) for b in betas]


def check_lr(name: str, lr: Any) -> None:
    """ConfigError unless ``lr`` is None (the engine's) or a number > 0."""
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
        raise ConfigError(f"{name} must be a number > 0 (or null for the engine's lr), got {lr!r}")


@dataclass
class GANConfig(NetConfig):
    """Settings every adversarial model shares (plus :class:`NetConfig`'s network settings).

    lr_g, lr_d: learning rates of the generator side and the discriminator side; None
    takes the engine's ``lr`` (the models' engine default is 2e-4, DCGAN's).
    betas_g, betas_d: their Adam betas; (0.5, 0.999) is DCGAN's, used by AnoGAN, EGBAD,
    ALAD, GANomaly and Skip-GANomaly.
    spectral_norm: spectral normalisation of the discriminator side (and, where the
    model says so, the encoder); None = the model's default (:meth:`resolved_spectral_norm`:
    off unless a model's docstring says otherwise).
    ema_decay: an exponential moving average of every weight, kept during training and
    put in place of the weights once training ends (what is scored, saved and exported);
    0 = off.  The decay of step t is min(ema_decay, (1 + t) / (10 + t)), so that a short
    run averages its last steps rather than its initialisation.  The last weights of a
    GAN depend on which side won the last few steps; their average does not, so seeds
    and epoch counts agree.  None = the model's default (:meth:`resolved_ema_decay`:
    off unless a model says otherwise).
    latent_dim: size of z; None = the model's paper value for images (``image_latent``)
    and ``table_latent`` for rows.
    """

    lr_g: float | None = None
    lr_d: float | None = None
    betas_g: list[float] = field(default_factory=lambda: [0.5, 0.999])
    betas_d: list[float] = field(default_factory=lambda: [0.5, 0.999])
    spectral_norm: bool | None = None
    ema_decay: float | None = None

    image_latent: ClassVar[int] = 100
    table_latent: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_lr("lr_g", self.lr_g)
        check_lr("lr_d", self.lr_d)
        self.betas_g = check_betas("betas_g", self.betas_g)
        self.betas_d = check_betas("betas_d", self.betas_d)
        check_types(self, numbers=("ema_decay",), optional=("ema_decay",))
        if self.ema_decay is not None and not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def resolved_ema_decay(self) -> float:
        """The weight average's decay (None: 0, off)."""
        return self.ema_decay or 0.0

    def resolved_spectral_norm(self) -> bool:
        """Whether the networks are built spectrally normalised (None: off)."""
        return bool(self.spectral_norm)

    def resolved_latent(self) -> int:
        if self.latent_dim is not None:
            return self.latent_dim
        return self.table_latent if self.is_table else self.image_latent

    def resolved_hidden(self) -> list[int]:
        return list(self.hidden) if self.hidden is not None else [64]


def check_weights(cfg: Any, *names: str) -> None:
    """ConfigError unless every named field is a number >= 0."""
    check_types(cfg, numbers=names)
    for name in names:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")
