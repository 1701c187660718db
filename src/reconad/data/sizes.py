"""How many items a dataset holds.

Every reconad dataset is map-style and has ``__len__``, but torch's ``Dataset`` type does
not declare it; this is the one place that checks it, for the datasets, the engine and
the Detector alike.
"""

from __future__ import annotations

from collections.abc import Sized

from torch.utils.data import Dataset

from reconad.errors import DataError


def dataset_size(dataset: Dataset) -> int:
    """``len(dataset)`` of a map-style dataset (DataError for one without a length, such as
    an ``IterableDataset``)."""
    if not isinstance(dataset, Sized):
        raise DataError(f"{type(dataset).__name__} has no length: reconad needs a map-style dataset")
    return len(dataset)
