"""Attach per-item labels (1 = known anomaly) to any dataset of ``ImageItem``/``RowItem``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from reconad.data.records import ImageItem, RowItem
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

    def __getitem__(self, i: int) -> ImageItem | RowItem:
        return dataclasses.replace(self.dataset[i], label=int(self.labels[i]))


def dataset_labels(dataset: Dataset) -> np.ndarray | None:
    """The items' labels without decoding any image, where the dataset knows them; else None.

    A training set read from disk can hold labelled anomalies (e.g. the magnetic-tile
    split with ``labelled_fraction``); the Detector treats those labels as ``y``.
    """
    from torch.utils.data import ConcatDataset, Subset

    if isinstance(dataset, LabelledDataset):
        return dataset.labels
    if isinstance(dataset, ConcatDataset):
        parts = [dataset_labels(d) for d in dataset.datasets]
        return None if any(p is None for p in parts) else np.concatenate(parts)  # type: ignore[arg-type]
    if isinstance(dataset, Subset):
        inner = dataset_labels(dataset.dataset)
        return None if inner is None else inner[np.asarray(dataset.indices, dtype=np.int64)]
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, (list, tuple, np.ndarray)):
        return np.asarray(labels, dtype=np.int64).reshape(-1)
    return None
