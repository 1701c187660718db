"""Settings of ESAD (end-to-end semi-supervised anomaly detection)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.networks import NetConfig

SCORES = ("latent+recon", "latent", "balanced", "recon+consistency")
BIAS_FREE = ("none", "second", "both")
CENTERS = ("origin", "initial")


@dataclass
class ESADConfig(NetConfig):
    """ESAD settings (plus the shared network settings of :class:`NetConfig`).

    entropy_weight: lambda_1, weight of the latent-norm (entropy) term.
    consistency_weight: lambda_2, weight of the consistency ||z - z_hat||^2.
    score: ``latent+recon`` (reconstruction error + ||z_hat - c||^2, the paper's),
    ``latent``, ``balanced`` (reconstruction error, ||z_hat - c||^2 and the
    consistency ||z - z_hat||^2, each divided by its mean over the normal training
    samples, fitted at the end of training) or ``recon+consistency`` (the same
    without the latent term; it ignores what labels taught E2).
    recon_anomalies: also reconstruct labelled anomalies (default: no, see the model).
    bias_free: which encoders have no bias terms: ``none``, ``second`` (E2) or ``both``.
    autoencoder_batchnorm: batch norm in E1 and the decoder (E2 never has it).
    center: c of the entropy term ||z_hat - c||^2: ``origin`` (c = 0) or ``initial``
    (Deep SAD's centre: the mean second code of the first training batch, before
    any update, entries nearer 0 than 0.1 moved to +-0.1).
    """

    legacy_values: ClassVar[dict[str, Any]] = {"center": "origin", "bias_free": "none"}

    entropy_weight: float = 1.0
    consistency_weight: float = 1.0
    score: str = "balanced"
    recon_anomalies: bool = False
    bias_free: str = "both"
    center: str = "initial"
    autoencoder_batchnorm: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_types(self, numbers=("entropy_weight", "consistency_weight"))
        if self.entropy_weight < 0 or self.consistency_weight < 0:
            raise ConfigError("entropy_weight and consistency_weight must be >= 0")
        if self.score not in SCORES:
            raise ConfigError(f"unknown score {self.score!r}; choose one of {', '.join(SCORES)}")
        if self.center not in CENTERS:
            raise ConfigError(f"unknown center {self.center!r}; choose one of {', '.join(CENTERS)}")
        if self.bias_free not in BIAS_FREE:
            raise ConfigError(f"unknown bias_free {self.bias_free!r}; choose one of {', '.join(BIAS_FREE)}")
