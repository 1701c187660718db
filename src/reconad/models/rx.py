"""The global RX detector (Reed & Yu, 1990): Mahalanobis distance to the background.

The background is one Gaussian fitted to the training rows (for a hyperspectral scene:
its own pixels, anomalies included, as the detector has no labels):

    RX(x) = (x - mu)^T  Sigma^-1  (x - mu)

with ``mu`` and ``Sigma`` the mean and covariance of the training rows.  Nothing is
trained: the statistics are computed once when the engine prepares the training data,
so ``epochs`` is 1 and the single pass over the data steps no optimiser.  ``ridge``
adds ``ridge * mean(diag(Sigma))`` to the diagonal so that a covariance made singular by
(near-)duplicate bands still inverts; the statistics are kept in float64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset, Subset

from reconad.data.records import Batch, RowBatch, collate_rows
from reconad.data.rows import TabularDataset
from reconad.data.sizes import dataset_size
from reconad.engine.config import check_types
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.errors import ConfigError, DataError
from reconad.models.base import AnomalyModel, ModelConfig, ScoreOutput

__all__ = ["RX", "RXConfig", "dataset_rows", "mahalanobis"]


@dataclass
class RXConfig(ModelConfig):
    """input_shape: ``[bands]`` (the Detector fills it); ridge: relative diagonal loading."""

    input_shape: list[int] | None = None
    ridge: float = 1e-6

    def __post_init__(self) -> None:
        check_types(self, numbers=("ridge",))
        if self.input_shape is not None and len(self.input_shape) != 1:
            raise ConfigError(f"rx takes table rows (input_shape [D]), got input_shape {self.input_shape}")
        if self.ridge < 0:
            raise ConfigError(f"ridge must be >= 0, got {self.ridge}")


def dataset_rows(dataset: Dataset) -> torch.Tensor:
    """All rows (N, D) of a TabularDataset, a (nested) Subset of one, or any dataset of RowItem."""
    if isinstance(dataset, TabularDataset):
        return dataset.x
    if isinstance(dataset, Subset):
        idx = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        return dataset_rows(dataset.dataset)[idx]
    return torch.stack([dataset[i].x for i in range(dataset_size(dataset))])


def gaussian_fit(rows: torch.Tensor, ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean, precision) in float64 of rows (N, D), the covariance loaded by ``ridge``."""
    x = rows.double()
    if x.shape[0] < 2:
        raise DataError(f"the RX background needs at least 2 rows, got {x.shape[0]}")
    mu = x.mean(0)
    centred = x - mu
    cov = centred.T @ centred / (x.shape[0] - 1)
    load = ridge * float(torch.diagonal(cov).mean().clamp_min(1e-30))
    cov = cov + load * torch.eye(cov.shape[0], dtype=cov.dtype)
    return mu, torch.linalg.pinv(cov, hermitian=True)


def mahalanobis(x: torch.Tensor, mean: torch.Tensor, precision: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance of each row of ``x`` (float64 inside, float32 out)."""
    d = x.double() - mean
    return ((d @ precision) * d).sum(dim=1).float()


class RX(AnomalyModel):
    """Global RX: fitted, not trained (see the module docstring)."""

    name = "rx"
    input_kinds: ClassVar[tuple[str, ...]] = ("table",)
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 1, "batch_size": 4096, "patience": None}
    default_monitor: ClassVar[str] = "none"
    inference_batch_size: ClassVar[int] = 65536

    mean: torch.Tensor
    precision: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, config: RXConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or RXConfig(**kwargs)
        if self.config.input_shape is None:
            raise ConfigError("model rx needs input_shape [D]; Detector.fit sets it from the training rows")
        d = self.config.input_shape[0]
        self.register_buffer("mean", torch.zeros(d, dtype=torch.float64))
        self.register_buffer("precision", torch.eye(d, dtype=torch.float64))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def collate_fn(self) -> Callable[[list[Any]], Batch]:
        return collate_rows

    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        if not bool(self.fitted):  # the engine prepares the training set first
            mu, prec = gaussian_fit(dataset_rows(dataset), self.config.ridge)
            self.mean.copy_(mu)
            self.precision.copy_(prec)
            self.fitted.fill_(True)
        return dataset

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {}

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        return StepOutput(0.0)

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> dict[str, float]:
        return {"loss": 0.0}

    @property
    def data_kind(self) -> str:
        return "table"

    def predict_step(self, batch: Batch) -> ScoreOutput:
        if not isinstance(batch, RowBatch):
            raise TypeError(f"rx scores table rows (spectra), got {type(batch).__name__}")
        d = int(self.mean.shape[0])
        if batch.x.shape[1:] != (d,):
            raise DataError(f"model rx was fitted on {d} features, got {list(batch.x.shape[1:])}")
        return ScoreOutput(mahalanobis(batch.x, self.mean, self.precision))
