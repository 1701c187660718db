"""Settings of the memory-augmented autoencoder (MemAE)."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.networks import NetConfig

INPUT_RANGES: tuple[str, ...] = ("unit", "signed")
WEIGHT_INITS: tuple[str, ...] = ("torch", "normal")


@dataclass
class MemAEConfig(NetConfig):
    """MemAE settings (plus the shared network settings of :class:`NetConfig`).

    memory_size: N, the memory slots; None = 100 for images (the paper's MNIST
    setting), 50 for rows (the paper's KDDCUP99 setting), 2000 for video clips (the
    paper's UCSD-Ped2 setting, ``--MemDim 2000`` in the official training script).
    shrink_threshold: lambda of the hard shrinkage; None = 1/N, the low end of the
    paper's [1/N, 3/N] (with softmax over cosine similarities every weight is at most
    e^2 times another, so 3/N can shrink all of them to zero while the memory is
    still random).  The official code fixes 0.0025 whatever N; on MNIST-10k that raised
    the one-class mean AUROC by 0.013, on Fashion-MNIST not at all (BENCHMARKS §16), so
    the default stays 1/N.
    entropy_weight: alpha, the weight of the addressing entropy in the loss (0.0002).
    temperature: the softmax runs over cosine / temperature.  The paper's formula is
    temperature 1, but cosines lie in [-1, 1], so over 100 slots the softmax is then
    nearly uniform and the memory returns a blurred average (one-class sklearn digits,
    classes 0/1/8: mean AUROC 0.51 at 1, 0.55 at 0.1, 0.93 at 0.02, 0.96 at 0.01).  The
    official code sharpens it by scoring with an unnormalised dot product instead;
    we keep the cosine and default to 0.01.
    similarity: ``cosine`` (the paper) or ``dot`` (the official code's unnormalised
    dot product; use with ``temperature=1``).
    query: images only. ``position`` (the official code's: one query per position of
    the encoder's map, of its channel size) or ``image`` (the whole map flattened into
    one query, so each slot is a prototype of a whole image).
    """

    memory_size: int | None = None
    shrink_threshold: float | None = None
    entropy_weight: float = 0.0002
    temperature: float = 0.01
    similarity: str = "cosine"
    query: str = "position"
    input_range: str = "unit"
    weight_init: str = "torch"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_types(
            self,
            integers=("memory_size",),
            numbers=("shrink_threshold", "entropy_weight", "temperature"),
            optional=("memory_size", "shrink_threshold"),
        )
        if self.memory_size is not None and self.memory_size < 2:
            raise ConfigError(f"memory_size must be >= 2, got {self.memory_size}")
        if self.shrink_threshold is not None and not 0 <= self.shrink_threshold < 1:
            raise ConfigError(f"shrink_threshold must be in [0, 1), got {self.shrink_threshold}")
        if self.similarity not in ("cosine", "dot"):
            raise ConfigError(f"similarity must be 'cosine' or 'dot', got {self.similarity!r}")
        if self.query not in ("position", "image"):
            raise ConfigError(f"query must be 'position' or 'image', got {self.query!r}")
        if self.input_range not in INPUT_RANGES:
            raise ConfigError(f"input_range must be one of {', '.join(INPUT_RANGES)}, got {self.input_range!r}")
        if self.weight_init not in WEIGHT_INITS:
            raise ConfigError(f"weight_init must be one of {', '.join(WEIGHT_INITS)}, got {self.weight_init!r}")
        if self.entropy_weight < 0 or self.temperature <= 0:
            raise ConfigError("entropy_weight must be >= 0 and temperature > 0")

    def resolved_memory_size(self) -> int:
        if self.memory_size is not None:
            return self.memory_size
        if self.is_video:
            return 2000
        return 50 if self.is_table else 100

    def resolved_threshold(self) -> float:
        if self.shrink_threshold is not None:
            return self.shrink_threshold
        return 1.0 / self.resolved_memory_size()
