"""Training settings shared by every model."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from numbers import Integral, Real
from typing import Any

from reconad.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "step")
PRECISIONS = ("float32", "bfloat16", "auto")


def int_list(name: str, value: Any, what: str = "integers") -> list[int]:
    """``value`` as a list of ints; ConfigError naming the field (``what`` it should list) when
    it is no list of numbers (e.g. ``--set layers=abc``)."""
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a list of {what}, got {value!r}") from None


def check_types(
    obj: Any, integers: tuple[str, ...] = (), numbers: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> None:
    """ConfigError naming the field when a value has the wrong type (e.g. ``--set epochs=abc``);
    names in ``optional`` may also be None.  Booleans are not numbers here (``epochs=true``
    is a typo, not 1), and numbers must be finite: JSON readers accept ``NaN`` and
    ``Infinity``, and a NaN learning rate or noise level would train silently wrong."""
    for names, kind, what in ((integers, Integral, "an integer"), (numbers, Real, "a number")):
        for name in names:
            value = getattr(obj, name)
            if value is None and name in optional:
                continue
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ConfigError(f"{name} must be {what}, got {value!r}")
            if not math.isfinite(value):
                raise ConfigError(f"{name} must be a finite number, got {value!r}")


@dataclass
class Settings:
    """Base of every settings dataclass (engine, models): plain JSON-able fields."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


@dataclass
class TrainConfig(Settings):
    """What the engine needs to train any model.

    ``lr``, ``betas``, ``weight_decay``, ``optimizer``, ``scheduler`` and ``grad_clip``
    are the defaults of every optimiser a model declares; a model may give one of its
    optimisers its own (e.g. a discriminator's ``lr_d``).  ``scheduler``: ``none``,
    ``cosine`` (to 0 over ``epochs``) or ``step`` (x0.1 after each third), stepped once
    per epoch.  ``monitor``: the logged value that picks the best epoch and drives
    early stopping (``val_loss``, ``loss``, any key the model logs), ``none`` (keep the
    last epoch, never stop early) or ``auto`` (the model's own default; for most models
    the held-out loss).  ``patience`` counts epochs without improvement of the
    monitored value before stopping early: a whole number >= 1, or ``None`` (never
    stop early).  ``device`` is
    ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda[:N]"``.  ``precision``:
    ``float32``, ``bfloat16`` (autocast in the training and held-out steps; falls back to
    float32 with a warning where the hardware has no native bfloat16) or ``auto``
    (bfloat16 only where native); the precision used is recorded in the history.
    """

    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    optimizer: str = "adam"
    scheduler: str = "none"
    seed: int = 0
    monitor: str = "auto"
    patience: int | None = 8
    min_delta: float = 1e-4
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True
    grad_clip: float | None = None
    precision: str = "float32"

    def __post_init__(self) -> None:
        check_types(
            self,
            integers=("epochs", "batch_size", "seed", "num_workers", "patience"),
            numbers=("lr", "weight_decay", "min_delta", "grad_clip"),
            optional=("patience", "grad_clip"),
        )
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.patience is not None and self.patience < 1:
            raise ConfigError(f"patience must be an integer >= 1 (or null: no early stop), got {self.patience!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.scheduler not in SCHEDULERS:
            raise ConfigError(f"unknown scheduler {self.scheduler!r}; choose one of {', '.join(SCHEDULERS)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"unknown precision {self.precision!r}; choose one of {', '.join(PRECISIONS)}")
        if not isinstance(self.monitor, str) or not self.monitor:
            raise ConfigError(f"monitor must be a logged value's name, 'auto' or 'none', got {self.monitor!r}")
        betas = self.betas
        if (
            not isinstance(betas, (list, tuple))
            or len(betas) != 2
            or not all(isinstance(b, Real) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(f"betas must be two numbers in [0, 1), got {betas!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = cls.field_names()
        return cls(**{k: v for k, v in values.items() if k in known})
