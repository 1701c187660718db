"""Training settings shared by every model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from numbers import Integral, Real
from typing import Any

from reconad.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd")


def check_types(
    obj: Any, integers: tuple[str, ...] = (), numbers: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> None:
    """ConfigError naming the field when a value has the wrong type (e.g. ``--set epochs=abc``);
    names in ``optional`` may also be None."""
    for names, kind, what in ((integers, Integral, "an integer"), (numbers, Real, "a number")):
        for name in names:
            value = getattr(obj, name)
            if not isinstance(value, kind) and not (value is None and name in optional):
                raise ConfigError(f"{name} must be {what}, got {value!r}")


@dataclass
class TrainConfig:
    """What the engine needs to train any model.

    ``patience`` counts epochs without improvement of the held-out loss before
    stopping early (``None`` or 0 disables it).  ``device`` is ``"auto"`` (CUDA when
    present), ``"cpu"`` or ``"cuda[:N]"``.
    """

    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"
    seed: int = 0
    patience: int | None = 8
    min_delta: float = 1e-4
    device: str = "auto"
    num_workers: int = 0
    progress: bool = True
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        check_types(
            self,
            integers=("epochs", "batch_size", "seed", "num_workers"),
            numbers=("lr", "weight_decay", "min_delta", "patience", "grad_clip"),
            optional=("patience", "grad_clip"),
        )
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = cls.field_names()
        return cls(**{k: v for k, v in values.items() if k in known})
