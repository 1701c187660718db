"""Attach per-item labels (1 = known anomaly) to any dataset of ``ImageItem``/``RowItem``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from reconad.errors import DataError


class LabelledDataset(Dataset):
    """Wraps ``dataset`` and replaces each item's ``label`` with ``labels[i]``."""

    def __init__(self, dataset: Dataset, labels: Sequence[int] | np.ndarray) -> None:
        lab = np.asarray(labels).reshape(-1).astype(np.int64)
        if len(lab) != len(dataset):  # type: ignore[arg-type]
            raise DataError(f"{len(lab)} labels for {len(dataset)} items")  # type: ignore[arg-type]
        self.dataset = dataset
        self.labels = lab

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return dataclasses.replace(self.dataset[i], label=int(self.labels[i]))
