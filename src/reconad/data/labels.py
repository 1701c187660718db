"""Attach per-item labels (1 = known anomaly) to any dataset of ``ImageItem``/``RowItem``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

from reconad.data.records import ImageItem, RowItem
from reconad.data.sizes import dataset_size
from reconad.errors import DataError


class LabelledDataset(Dataset):
    """Wraps ``dataset`` and replaces each item's ``label`` with ``labels[i]``."""

    def __init__(self, dataset: Dataset, labels: Sequence[int] | np.ndarray) -> None:
        lab = np.asarray(labels).reshape(-1).astype(np.int64)
        n = dataset_size(dataset)
        if len(lab) != n:
            raise DataError(f"{len(lab)} labels for {n} items")
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
        present = [p for p in parts if p is not None]
        return np.concatenate(present) if len(present) == len(parts) else None
    if isinstance(dataset, Subset):
        inner = dataset_labels(dataset.dataset)
        return None if inner is None else inner[np.asarray(dataset.indices, dtype=np.int64)]
    labels = getattr(dataset, "labels", None)
    if isinstance(labels, (list, tuple, np.ndarray)):
        return np.asarray(labels, dtype=np.int64).reshape(-1)
    return None
