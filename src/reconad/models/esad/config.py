"""Settings of ESAD (end-to-end semi-supervised anomaly detection)."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.networks import NetConfig

SCORES = ("latent+recon", "latent")


@dataclass
class ESADConfig(NetConfig):
    """ESAD settings (plus the shared network settings of :class:`NetConfig`).

    entropy_weight: lambda_1, weight of the latent-norm (entropy) term.
    consistency_weight: lambda_2, weight of the consistency ||z - z_hat||^2.
    score: ``latent+recon`` (reconstruction error + ||z_hat||^2) or ``latent``.
    recon_anomalies: also reconstruct labelled anomalies (default: no, see the model).
    """

    entropy_weight: float = 1.0
    consistency_weight: float = 1.0
    score: str = "latent+recon"
    recon_anomalies: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        check_types(self, numbers=("entropy_weight", "consistency_weight"))
        if self.entropy_weight < 0 or self.consistency_weight < 0:
            raise ConfigError("entropy_weight and consistency_weight must be >= 0")
        if self.score not in SCORES:
            raise ConfigError(f"unknown score {self.score!r}; choose one of {', '.join(SCORES)}")
