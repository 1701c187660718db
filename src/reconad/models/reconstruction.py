"""What AE, VAE, MemAE and ESAD share: one model class for images and table rows.

The input kind comes from ``config.input_shape`` (``[D]`` rows, ``[C, H, W]``
images, ``[C, T, H, W]`` video clips of T frames).  Batches are ``ImageBatch``
(``.image``), ``RowBatch`` (``.x``) or ``ClipBatch`` (``.frames`` (B, T, C, H, W),
seen by the networks as (B, C, T, H, W)); image and row batches carry ``.label``
(1 = labelled anomaly).  Table rows are scaled by a ``RowScaler``
fitted on the unlabelled training rows the first time ``prepare_data`` sees them
(the engine prepares the training set first) and saved with the weights.

``predict_step(batch)`` returns scores (B,) and maps: per-pixel squared
reconstruction errors (mean over channels, ``(B, H, W)``) for images, ``(B, T, H, W)``
for clips (one map per frame; a frame's score is its map's mean) and ``None`` for rows.  Subclasses implement ``loss(x, labels)`` and ``score(x)``, which returns
the scores and the element-wise squared error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch.utils.data import Dataset, Subset

from reconad.data.records import Batch, ClipBatch, ImageBatch, RowBatch, collate_clips, collate_images, collate_rows
from reconad.data.rows import TabularDataset
from reconad.data.sizes import dataset_size
from reconad.errors import ConfigError, DataError
from reconad.models.base import AnomalyModel, ScoreOutput
from reconad.models.networks import NetConfig, RowScaler


def _table_rows(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """(rows, labels) of a TabularDataset or a (nested) Subset of one."""
    if isinstance(dataset, TabularDataset):
        return dataset.x, dataset.labels
    if isinstance(dataset, Subset):
        x, y = _table_rows(dataset.dataset)
        idx = torch.as_tensor(list(dataset.indices), dtype=torch.long)
        return x[idx], y[idx]
    items = [dataset[i] for i in range(dataset_size(dataset))]
    return torch.stack([it.x for it in items]), torch.tensor([int(it.label) for it in items])


class ReconstructionModel(AnomalyModel):
    """Base of the autoencoder family; see the module docstring."""

    input_kinds: ClassVar[tuple[str, ...]] = ("image", "table")
    min_image_size: ClassVar[int] = 8
    #: engine settings that suit these small networks (any the user passes win).
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 128, "epochs": 50, "lr": 1e-3, "patience": 10}
    inference_batch_size: ClassVar[int] = 256

    def __init__(self, config: NetConfig) -> None:
        super().__init__()
        if config.input_shape is None:
            raise ConfigError(
                f"model {self.name} needs input_shape ([D] for rows, [C, H, W] for images); "
                "Detector.fit sets it from the training data"
            )
        self.config = config
        self.is_table = config.is_table
        self.is_video = config.is_video
        if self.is_video and "video" not in self.input_kinds:
            raise ConfigError(f"model {self.name} has no video variant; for clips use ae or memae")
        if self.is_table:
            self.scaler = RowScaler(config.input_shape[0], config.scaling)

    # ------------------------------------------------------------------ data
    def collate_fn(self) -> Callable[[list[Any]], Batch]:
        if self.is_video:
            return collate_clips
        return collate_rows if self.is_table else collate_images

    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        if self.is_table and not bool(self.scaler.fitted):
            rows, labels = _table_rows(dataset)
            normal = rows[labels == 0]
            self.scaler.fit(normal if len(normal) else rows)
        return dataset

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        expected = tuple(self.config.input_shape)
        if tuple(x.shape[1:]) != expected:
            what = "features" if self.is_table else "clip shape [C, T, H, W]" if self.is_video else "image shape"
            raise DataError(f"model {self.name} was trained on {what} {list(expected)}, got {list(x.shape[1:])}")
        return self.scaler(x.float()) if self.is_table else x

    @property
    def data_kind(self) -> str:
        return "table" if self.is_table else "video" if self.is_video else "image"

    def export_blocker(self) -> str | None:
        if self.is_video:
            return f"{self.name} was trained on video clips; export takes image models"
        return super().export_blocker()

    def batch_inputs(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """(checked network input, labels (B,)) of an image, row or clip batch."""
        if not isinstance(batch, (ImageBatch, RowBatch, ClipBatch)):
            raise TypeError(f"{self.name} takes images, clips or table rows, got {type(batch).__name__}")
        if isinstance(batch, ClipBatch):  # clip labels are per frame: the models train on normal clips only
            x = batch.frames.permute(0, 2, 1, 3, 4)
            return self._check(x), torch.zeros(len(x), dtype=torch.long, device=x.device)
        x = batch.image if isinstance(batch, ImageBatch) else batch.x
        labels = batch.label if batch.label is not None else torch.zeros(len(x), dtype=torch.long, device=x.device)
        return self._check(x), labels

    # -------------------------------------------------------------- training
    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(self, batch: Batch) -> torch.Tensor:
        x, labels = self.batch_inputs(batch)
        return self.loss(x, labels)

    # --------------------------------------------------------------- scoring
    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (B,), element-wise squared error shaped like x) of scaled inputs."""
        raise NotImplementedError

    def predict_step(self, batch: Batch) -> ScoreOutput:
        x, _ = self.batch_inputs(batch)
        scores, err = self.score(x)
        return ScoreOutput(scores, None if self.is_table else err.mean(dim=1))


def squared_error(x: torch.Tensor, x_hat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample mean squared error (B,), element-wise squared error)."""
    err = (x - x_hat) ** 2
    return err.flatten(1).mean(dim=1), err
