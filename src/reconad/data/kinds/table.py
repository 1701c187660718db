"""Table rows (2-D arrays, tensors, DataFrames, ``TabularDataset``): the models' MLP variants.
Spectra (one row per pixel) are table rows too."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from reconad.data.kinds.base import DataKind, only, use_instead
from reconad.data.records import collate_rows
from reconad.data.rows import as_table_dataset, feature_names, match_columns
from reconad.data.sizes import dataset_size
from reconad.errors import DataError


class TableKind(DataKind):
    name: ClassVar[str] = "table"
    has_maps: ClassVar[bool] = False
    empty: ClassVar[str] = "no rows to score"

    def collate(self) -> Callable[[list[Any]], Any]:
        return collate_rows

    def dataset(self, data: Any, labels: np.ndarray | None = None) -> Dataset:
        return as_table_dataset(data, labels)

    def known_labels(self, ds: Dataset) -> np.ndarray | None:
        return None  # rows carry labels through y only

    def input_shape(self, item: Any) -> list[int]:
        return list(item.x.shape)

    def columns(self, data: Any) -> list[str] | None:
        return feature_names(data)

    def match(self, data: Any, names: list[str] | None) -> Any:
        return match_columns(data, names)

    def not_taken(self, model_name: str, input_kinds: tuple[str, ...], takers: Sequence[str]) -> str:
        got = "a table (rows x features)"
        return f"model {model_name} takes {only(input_kinds)} only, got {got}{use_instead(takers, 'tables')}"

    def n_features(self, ds: Dataset) -> int | None:
        return int(ds[0].x.shape[0]) if dataset_size(ds) else None

    def check_width(self, ds: Dataset, expected: int | None) -> None:
        """scikit-learn's one line when rows to score have another number of features than fit saw."""
        width = self.n_features(ds)
        if expected is not None and width is not None and width != expected:
            raise DataError(f"X has {width} features, but Detector is expecting {expected} features as input")


def check_rows_shape(data: Any) -> None:
    """Rows for a model fitted on a table must be 2-D; one row given as 1-D is the usual slip."""
    shape = getattr(data, "shape", None)
    if shape is not None and hasattr(data, "ndim") and data.ndim == 1:
        raise DataError(
            f"table rows must be 2-D (rows x features), got shape {tuple(shape)}. "
            "Reshape your data: one row is X[None], one feature X[:, None]"
        )
