"""How many items a dataset holds.

Every reconad dataset is map-style and has ``__len__``, but torch's ``Dataset`` type does
not declare it; this is the one place that says so.
"""

from __future__ import annotations

from collections.abc import Sized
from typing import cast

from torch.utils.data import Dataset


def dataset_size(dataset: Dataset) -> int:
    """``len(dataset)`` of a map-style dataset."""
    return len(cast(Sized, dataset))
