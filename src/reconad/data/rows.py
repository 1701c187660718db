"""Table rows as a dataset: ``TabularDataset`` yields ``RowItem`` records, ``collate_rows`` batches them.

The file *loaders* (CSV, ADBench ``.npz``, KDDCUP99, NSL-KDD) live in
``reconad.data.table_files``; this module only turns an in-memory table (2-D array,
tensor or pandas DataFrame) into float32 rows the models train on.  Scaling of the
features is the model's business (fitted on training rows and saved with it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from reconad.data.records import RowItem
from reconad.data.table_files import first_cell, first_nonfinite
from reconad.errors import DataError, DataTypeError

__all__ = ["TabularDataset", "as_table_dataset", "feature_names", "is_table", "match_columns"]


def _is_dataframe(data: Any) -> bool:
    return hasattr(data, "columns") and hasattr(data, "to_numpy") and hasattr(data, "dtypes")


def feature_names(data: Any) -> list[str] | None:
    """A DataFrame's column names (what ``fit`` records, as scikit-learn's
    ``feature_names_in_``) when every one is a string; None for arrays, tensors and
    DataFrames with other column labels (matched by position, as scikit-learn does).
    Names must be unique."""
    if not _is_dataframe(data) or not all(isinstance(c, str) for c in data.columns):
        return None
    return _column_names(data)


def _column_names(data: Any) -> list[str]:
    """A DataFrame's column names as strings; DataError when one appears twice."""
    names = [str(c) for c in data.columns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise DataError(f"column name(s) {', '.join(dup[:5])} appear more than once: give every column its own name")
    return names


def match_columns(data: Any, names: list[str] | None) -> Any:
    """``data``'s columns in the order of the ``names`` it was fitted on, matched by name: a
    DataFrame with columns in another order is reordered; missing or unknown names are a
    DataError (one line).  Arrays, tensors, datasets and detectors fitted on arrays pass as they are."""
    if names is None or not _is_dataframe(data):
        return data
    given = _column_names(data)  # a DataFrame scored after a named fit: matched by name only
    if given == names:
        return data
    missing = [n for n in names if n not in given]
    unknown = [n for n in given if n not in names]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
        if unknown:
            parts.append(f"unknown {', '.join(unknown[:5])}{' ...' if len(unknown) > 5 else ''}")
        raise DataError(
            f"the DataFrame's columns are not the {len(names)} the model was fitted on ({'; '.join(parts)}): "
            "columns are matched by name"
        )
    return data.iloc[:, [given.index(n) for n in names]]


def is_table(data: Any) -> bool:
    """True for what the Detector treats as table rows: a 2-D array/tensor, a DataFrame,
    a :class:`TabularDataset` (or a Subset of one), a list of rows (lists or tuples) or
    another 2-D array-like (``__array__``, as scikit-learn takes); image arrays are 3-D or 4-D."""
    if isinstance(data, TabularDataset):
        return True
    if isinstance(data, Subset):
        return is_table(data.dataset)
    if _is_dataframe(data):
        return True
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return data.ndim == 2
    if isinstance(data, (list, tuple)):
        return bool(data) and all(isinstance(row, (list, tuple)) for row in data)
    if hasattr(data, "__array__") and not hasattr(data, "getbands") and not isinstance(data, Dataset):
        return np.asarray(data).ndim == 2  # an array-like; a PIL image (getbands) is an image
    return False


def _numeric_numpy_dtype(t: Any) -> bool:
    """True for a NumPy number or bool dtype; pandas' own dtypes (string, categorical,
    nullable integers) are not NumPy dtypes and count as not numeric."""
    try:
        return bool(np.issubdtype(t, np.number) or np.issubdtype(t, np.bool_))
    except TypeError:
        return False


def _rows(data: Any) -> np.ndarray:
    """``data`` as float32 (rows x features); a NaN / infinite cell is a ``DataError``
    naming its row and column (a NaN row would score NaN, and NaN passes any threshold)."""
    columns = [str(c) for c in data.columns] if _is_dataframe(data) else None
    if _is_dataframe(data):
        bad = [str(c) for c, t in zip(data.columns, data.dtypes) if not _numeric_numpy_dtype(t)]
        if bad:
            raise DataError(
                f"non-numeric or nullable column(s) {', '.join(bad[:5])}: encode them as numbers "
                "(e.g. one-hot) and fill missing values first"
            )
        arr = data.to_numpy(dtype=np.float64)
    elif torch.is_tensor(data):
        arr = data.detach().cpu().to(torch.float64).numpy()
    else:
        arr = np.asarray(data)
    if arr.ndim != 2:
        raise DataError(f"table rows must be 2-D (rows x features), got shape {arr.shape}")
    if np.iscomplexobj(arr):
        raise DataError("Complex data not supported: table cells must be real numbers")
    try:
        wide = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:  # the numpy reason, e.g. "float() argument must be a string or ..."
        raise DataTypeError(f"table holds non-numeric values ({exc}): encode them (e.g. one-hot) first") from None
    if wide.shape[1] == 0:  # scikit-learn's wording (its estimator checks look for it)
        raise DataError(f"the table has 0 feature(s) (shape={wide.shape}) while a minimum of 1 is required.")
    cell = first_nonfinite(wide, columns)
    if cell is not None:
        raise DataError(f"table {cell}: NaN or infinite values cannot be scored")
    cell = first_cell(np.abs(wide) > np.finfo(np.float32).max, wide, columns)
    if cell is not None:
        raise DataError(f"table {cell}: too large for float32 (over 3.4e38); rescale that column")
    return wide.astype(np.float32)


class TabularDataset(Dataset):
    """Float32 rows (N, D) with optional labels (1 = anomaly, 0 = normal/unlabelled)."""

    def __init__(self, rows: Any, labels: Sequence[int] | np.ndarray | None = None) -> None:
        self.x = torch.from_numpy(np.ascontiguousarray(_rows(rows)))
        if labels is None:
            self.labels = torch.zeros(len(self.x), dtype=torch.long)
        else:
            lab = np.asarray(labels).reshape(-1)
            if len(lab) != len(self.x):
                raise DataError(f"{len(lab)} labels for {len(self.x)} rows")
            self.labels = torch.from_numpy(lab.astype(np.int64))

    @property
    def n_features(self) -> int:
        return int(self.x.shape[1])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> RowItem:
        return RowItem(x=self.x[i], label=int(self.labels[i]))


def as_table_dataset(data: Any, labels: Sequence[int] | np.ndarray | None = None) -> Dataset:
    """A TabularDataset of ``data`` (a Subset of one is kept as it is when no labels are given)."""
    if isinstance(data, Subset) and labels is None:
        return data
    if isinstance(data, Subset):
        data = torch.stack([data[i].x for i in range(len(data))])
    if isinstance(data, TabularDataset):
        if labels is None:
            return data
        return TabularDataset(data.x.numpy(), labels)
    return TabularDataset(data, labels)
