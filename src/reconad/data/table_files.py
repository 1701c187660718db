"""Tabular anomaly data: CSV files, ADBench/ODDS ``.npz`` sets, KDDCUP99 and NSL-KDD.

Every loader returns a :class:`TabularData`: ``X`` (float64, rows x features), ``y``
(int64, 1 = anomaly, 0 = normal) and the feature names.  Nothing here scales the
features unless the protocol says so (KDDCUP99, NSL-KDD: min-max, see below).

* :func:`load_csv`: any CSV with a header row.  Non-numeric feature columns are
  one-hot encoded (``categorical="onehot"``, the default; column ``c`` with value ``v``
  becomes the feature ``c=v``) or refused with a :class:`DataError` naming the column
  (``categorical="error"``).  Empty cells are refused.  The label column is mapped to
  {0, 1} by ``anomaly_values`` (these values are anomalies, all others normal) or
  ``normal_values`` (these are normal, all others anomalies); with neither, the label
  column must already hold 0/1.
* :func:`load_npz` / :func:`load_adbench`: the ADBench "Classical" files (``X``, ``y``;
  ``y = 1`` anomaly); ``load_adbench("cardio", root)`` finds ``6_cardio.npz`` in ``root``.
* :func:`load_kddcup99`: the "10 percent" KDD Cup 1999 file (41 features + label, no
  header, ``.gz`` or plain) with the DAGMM/MemAE protocol: one-hot ``protocol_type``,
  ``service``, ``flag``; min-max scaling of every column; ``normal.`` traffic is the
  **anomaly** class, because it is the minority (about 20%) of that file.
* :func:`load_nsl_kdd` / :func:`nsl_kdd_train_test`: NSL-KDD's ``KDDTrain+`` /
  ``KDDTest+`` format (41 features, the attack name, a difficulty level; with or without
  a header line).  Here **attack** traffic is the anomaly class and ``normal`` the normal
  one: NSL-KDD removed KDD99's duplicate attack records, so normal traffic is about half
  of each file and no longer a minority; the intrusion-detection reading (learn normal
  traffic, flag attacks) is the one the NSL-KDD literature uses.  The train file fixes
  the one-hot categories and the min-max ranges; the test file is encoded with them
  (a category unseen in training becomes an all-zero one-hot group).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reconad.errors import ConfigError, DataError

__all__ = [
    "TabularData",
    "load_csv",
    "load_npz",
    "load_adbench",
    "adbench_names",
    "ADBENCH_DEFAULT",
    "KDD_FEATURES",
    "KDD_CATEGORICAL",
    "KDD_NUMERIC",
    "KddEncoder",
    "KddTable",
    "read_kdd_rows",
    "load_kddcup99",
    "load_nsl_kdd",
    "nsl_kdd_train_test",
    "find_kddcup99_file",
]

#: The six ADBench sets of the tabular benchmark (ESAD reports on the first four).
ADBENCH_DEFAULT = ("cardio", "satellite", "satimage-2", "shuttle", "thyroid", "WBC")

#: The 41 KDD Cup 1999 feature names, in file order (NSL-KDD uses the same).
KDD_FEATURES = (
    "duration",
    "protocol_type",
    "service",
    "flag",
    "src_bytes",
    "dst_bytes",
    "land",
    "wrong_fragment",
    "urgent",
    "hot",
    "num_failed_logins",
    "logged_in",
    "num_compromised",
    "root_shell",
    "su_attempted",
    "num_root",
    "num_file_creations",
    "num_shells",
    "num_access_files",
    "num_outbound_cmds",
    "is_host_login",
    "is_guest_login",
    "count",
    "srv_count",
    "serror_rate",
    "srv_serror_rate",
    "rerror_rate",
    "srv_rerror_rate",
    "same_srv_rate",
    "diff_srv_rate",
    "srv_diff_host_rate",
    "dst_host_count",
    "dst_host_srv_count",
    "dst_host_same_srv_rate",
    "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate",
    "dst_host_serror_rate",
    "dst_host_srv_serror_rate",
    "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
KDD_CATEGORICAL = ("protocol_type", "service", "flag")


@dataclass
class TabularData:
    """Rows ``X`` (float64), labels ``y`` (int64, 1 = anomaly) and feature names."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    name: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.X.ndim != 2:
            raise DataError(f"{self.name or 'table'}: X must be 2-D, got shape {self.X.shape}")
        if self.y.shape != (self.X.shape[0],):
            raise DataError(f"{self.name or 'table'}: {self.y.shape[0]} labels for {self.X.shape[0]} rows")
        if len(self.feature_names) != self.X.shape[1]:
            raise DataError(f"{self.name or 'table'}: {len(self.feature_names)} names for {self.X.shape[1]} features")
        where = first_nonfinite(self.X, self.feature_names) if self.X.dtype.kind == "f" else None
        if where is not None:
            raise DataError(f"{self.name or 'table'}: {where}: NaN or infinite values cannot be scored")

    @property
    def n_anomalies(self) -> int:
        return int(self.y.sum())

    def __len__(self) -> int:
        return int(self.X.shape[0])


# ------------------------------------------------------------------------- helpers


def first_nonfinite(X: np.ndarray, columns: Sequence[str] | None = None) -> str | None:
    """Where the first NaN / infinite cell of a 2-D table is, in words, or None when all are finite.

    Rows are counted from 0; columns are named by ``columns`` where given, else numbered
    from 0.  Used wherever a table is taken in, so every refusal names the cell.
    """
    return first_cell(~np.isfinite(X), X, columns)


def first_cell(bad: np.ndarray, X: np.ndarray, columns: Sequence[str] | None = None) -> str | None:
    """``"row r, column c is v"`` for the first True cell of ``bad`` (X's shape), or None."""
    if not bad.any():
        return None
    flat = np.flatnonzero(bad.ravel())
    r, c = divmod(int(flat[0]), X.shape[1])
    col = repr(str(columns[c])) if columns is not None and c < len(columns) else str(c)
    more = f" ({flat.size - 1} more such cells)" if flat.size > 1 else ""
    return f"row {r}, column {col} is {X[r, c]:.6g}{more}"


def _open_text(path: str | os.PathLike, encoding: str = "utf-8-sig") -> io.TextIOBase:
    """A text file, plain or ``.gz``; the default ``utf-8-sig`` reads UTF-8 with or without
    the byte-order mark that spreadsheet programs write before the header."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no such file: {p}")
    if p.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(p, "rb"), encoding=encoding, newline="")
    return open(p, encoding=encoding, newline="")


def _read_csv_rows(path: str | os.PathLike, delimiter: str, encoding: str) -> list[list[str]]:
    """Every row of a CSV file; a file in another encoding is one line naming the file."""
    try:
        with _open_text(path, encoding) as fh:
            return list(csv.reader(fh, delimiter=delimiter))
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not {encoding} text (byte {exc.start}: {exc.reason}); "
            "re-save it as UTF-8 or pass its encoding (load_csv(..., encoding='latin-1'))"
        ) from None
    except LookupError:
        raise ConfigError(f"unknown text encoding {encoding!r}") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not a readable CSV file: {exc}") from None


def _csv_header(first: list[str], header: bool, where: str) -> list[str]:
    """The column names: the first row, or ``c0, c1, ...`` for a file without a header.
    A first row of numbers only is refused, since taking a data row as the header would
    silently drop it and misname every column."""
    if not header:
        return [f"c{i}" for i in range(len(first))]
    names = [h.strip() for h in first]
    if names and all(_as_float(h) is not None for h in names):
        raise DataError(
            f"{where}: the first line holds only numbers ({', '.join(names[:4])}...), so it looks like data, "
            "not a header; add a header row, or pass header=False (columns named c0, c1, ...)"
        )
    return names


def _as_float(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def _binary_labels(
    raw: Sequence[str], anomaly_values: Iterable[str] | None, normal_values: Iterable[str] | None, where: str
) -> np.ndarray:
    if anomaly_values is not None and normal_values is not None:
        raise ConfigError("give anomaly_values or normal_values, not both")
    if anomaly_values is not None:
        keys = {str(v).strip() for v in anomaly_values}
        return np.array([v.strip() in keys for v in raw], dtype=np.int64)
    if normal_values is not None:
        keys = {str(v).strip() for v in normal_values}
        return np.array([v.strip() not in keys for v in raw], dtype=np.int64)
    vals = [_as_float(v) for v in raw]
    if any(v not in (0.0, 1.0) for v in vals):
        seen = sorted({v.strip() for v in raw})[:5]
        raise DataError(
            f"{where}: label values must be 0/1 (1 = anomaly), found {seen}; "
            "say which values are anomalies (anomaly_values) or normal (normal_values)"
        )
    return np.array(vals, dtype=np.int64)


def _encode_columns(columns: dict[str, list[str]], categorical: str, where: str) -> tuple[np.ndarray, list[str]]:
    """Numeric columns as they are, non-numeric ones one-hot (``name=value``) or refused."""
    if categorical not in ("onehot", "error"):
        raise ConfigError(f"categorical must be 'onehot' or 'error', got {categorical!r}")
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for name, values in columns.items():
        if any(v.strip() == "" for v in values):
            raise DataError(f"{where}: column {name!r} has empty cells; fill or drop them first")
        nums = [_as_float(v) for v in values]
        if all(v is not None for v in nums):
            col = np.array(nums, dtype=np.float64)
            if not np.isfinite(col).all():
                r = int(np.flatnonzero(~np.isfinite(col))[0])
                raise DataError(f"{where}: data row {r}, column {name!r} holds {values[r]!r} (NaN or infinite)")
            blocks.append(col[:, None])
            names.append(name)
            continue
        if categorical == "error":
            bad = next(v for v, n in zip(values, nums) if n is None)
            raise DataError(
                f"{where}: column {name!r} is not numeric (e.g. {bad!r}); "
                "one-hot encode it (categorical='onehot') or leave it out"
            )
        levels = sorted(set(values))
        index = {lvl: i for i, lvl in enumerate(levels)}
        onehot = np.zeros((len(values), len(levels)), dtype=np.float64)
        for r, v in enumerate(values):
            onehot[r, index[v]] = 1.0
        blocks.append(onehot)
        names.extend(f"{name}={lvl}" for lvl in levels)
    X = np.concatenate(blocks, axis=1) if blocks else np.zeros((0, 0))
    return X, names


# ----------------------------------------------------------------------------- CSV


def load_csv(
    path: str | os.PathLike,
    label_column: str | None = None,
    feature_columns: Sequence[str] | None = None,
    anomaly_values: Iterable[str] | None = None,
    normal_values: Iterable[str] | None = None,
    categorical: str = "onehot",
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
    header: bool = True,
) -> TabularData:
    """Read a CSV with a header row (``header=False``: none; columns are named ``c0, c1, ...``).

    ``feature_columns``: the columns to use (default: every column but the label).
    ``label_column``: None gives an all-zero ``y`` (unlabelled data to fit on).
    ``encoding``: the file's text encoding; the default reads UTF-8 with or without a
    byte-order mark.
    """
    where = str(path)
    lines = _read_csv_rows(path, delimiter, encoding)
    if not lines:
        raise DataError(f"{where}: the file is empty")
    names = _csv_header(lines[0], header, where)
    first = 1 if header else 0
    numbered = [(n, r) for n, r in enumerate(lines[first:], first + 1) if r and any(c.strip() for c in r)]
    rows = [r for _, r in numbered]
    if len(set(names)) != len(names):
        raise DataError(f"{where}: duplicate column names in the header")
    for n, r in numbered:
        if len(r) != len(names):
            raise DataError(f"{where}: line {n} has {len(r)} fields, the header has {len(names)}")
    if not rows:
        raise DataError(f"{where}: no data rows")
    col = {h: i for i, h in enumerate(names)}
    if label_column is not None and label_column not in col:
        raise DataError(f"{where}: no label column {label_column!r}; columns: {', '.join(names)}")
    if feature_columns is None:
        feature_columns = [h for h in names if h != label_column]
    missing = [c for c in feature_columns if c not in col]
    if missing:
        raise DataError(f"{where}: no column(s) {', '.join(map(repr, missing))}; columns: {', '.join(names)}")
    if label_column is not None and label_column in feature_columns:
        raise ConfigError(f"the label column {label_column!r} cannot also be a feature")
    if not feature_columns:
        raise DataError(f"{where}: no feature columns")
    columns = {c: [r[col[c]].strip() for r in rows] for c in feature_columns}
    X, names = _encode_columns(columns, categorical, where)
    if label_column is None:
        y = np.zeros(len(rows), dtype=np.int64)
    else:
        y = _binary_labels([r[col[label_column]] for r in rows], anomaly_values, normal_values, where)
    return TabularData(X, y, names, name=Path(path).stem)


# ----------------------------------------------------------------------- ADBench npz


def load_npz(path: str | os.PathLike, name: str | None = None) -> TabularData:
    """An ADBench/ODDS ``.npz`` with arrays ``X`` (rows x features) and ``y`` (1 = anomaly)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no such file: {p}")
    try:
        with np.load(p, allow_pickle=False) as z:
            if "X" not in z.files or "y" not in z.files:
                raise DataError(f"{p}: expected arrays 'X' and 'y', found {', '.join(z.files)}")
            X = np.asarray(z["X"], dtype=np.float64)
            y_raw = np.asarray(z["y"]).reshape(-1)
    except DataError:  # a ValueError too: already one line naming the file
        raise
    except (ValueError, OSError) as exc:
        raise DataError(f"{p}: not a readable .npz file ({exc})") from exc
    if X.ndim == 1:
        X = X[:, None]
    if not np.isin(y_raw, (0, 1)).all():
        raise DataError(f"{p}: y must hold 0 (normal) and 1 (anomaly)")
    bad = first_nonfinite(X) if X.ndim == 2 else None
    if bad is not None:
        raise DataError(f"{p}: X: {bad} (NaN or infinite)")
    return TabularData(X, y_raw.astype(np.int64), [f"x{i}" for i in range(X.shape[1])], name=name or p.stem)


_ADBENCH_FILE = re.compile(r"^(?:\d+_)?(.+)\.npz$")


def adbench_names(root: str | os.PathLike) -> dict[str, Path]:
    """Dataset name (file name without the ``<number>_`` prefix) -> file, for ``root``."""
    r = Path(root)
    if not r.is_dir():
        raise DataError(f"no such folder: {r}")
    out: dict[str, Path] = {}
    for f in sorted(r.glob("*.npz")):
        m = _ADBENCH_FILE.match(f.name)
        if m:
            out[m.group(1)] = f
    return out


def load_adbench(name: str, root: str | os.PathLike) -> TabularData:
    """``load_adbench("cardio", root)`` reads ``root/6_cardio.npz`` (case-insensitive name)."""
    files = adbench_names(root)
    by_lower = {k.lower(): k for k in files}
    key = by_lower.get(name.lower().removesuffix(".npz"))
    if key is None:
        m = _ADBENCH_FILE.match(name if name.endswith(".npz") else name + ".npz")
        key = by_lower.get(m.group(1).lower()) if m else None
    if key is None:
        avail = ", ".join(sorted(files)) or "none"
        raise DataError(f"unknown dataset {name!r} in {root} (available: {avail})")
    return load_npz(files[key], name=key)


# ----------------------------------------------------------------- KDD 99 / NSL-KDD


@dataclass
class KddTable:
    """A KDD99/NSL-KDD file as read: numeric columns, the three symbolic ones, labels."""

    numeric: np.ndarray  # (n, 38) float64, KDD_NUMERIC order
    symbolic: dict[str, np.ndarray]  # protocol_type / service / flag -> (n,) str
    labels: np.ndarray  # (n,) str, e.g. "normal." or "neptune"

    def __len__(self) -> int:
        return int(self.numeric.shape[0])


KDD_NUMERIC = tuple(f for f in KDD_FEATURES if f not in KDD_CATEGORICAL)
_KDD_NUM_IDX = [KDD_FEATURES.index(f) for f in KDD_NUMERIC]
_KDD_CAT_IDX = {c: KDD_FEATURES.index(c) for c in KDD_CATEGORICAL}


def read_kdd_rows(path: str | os.PathLike, chunk: int = 50_000) -> KddTable:
    """Read a KDD99 or NSL-KDD file (``.gz`` or plain).

    A header line (first field ``duration``) is skipped; a 43rd field (NSL-KDD's
    difficulty level) is dropped.  Parsed in chunks so the 10% file (494k rows) needs
    no more than its float array in memory.
    """
    numeric: list[np.ndarray] = []
    symbolic: dict[str, list[np.ndarray]] = {c: [] for c in KDD_CATEGORICAL}
    labels: list[np.ndarray] = []
    buf: list[list[str]] = []

    def flush() -> None:
        if not buf:
            return
        arr = np.array(buf, dtype=str)
        try:
            numeric.append(arr[:, _KDD_NUM_IDX].astype(np.float64))
        except ValueError as exc:
            raise DataError(f"{path}: a numeric KDD field is not a number ({exc})") from None
        for c, i in _KDD_CAT_IDX.items():
            symbolic[c].append(arr[:, i])
        labels.append(arr[:, 41])
        buf.clear()

    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split(",")
            if lineno == 1 and parts[0].strip().lower() == "duration":
                continue
            if len(parts) not in (42, 43):
                raise DataError(
                    f"{path}: line {lineno} has {len(parts)} fields; a KDD row has 41 features "
                    "and a label (NSL-KDD: and a difficulty level)"
                )
            buf.append([p.strip() for p in parts[:42]])
            if len(buf) >= chunk:
                flush()
    flush()
    if not numeric:
        raise DataError(f"{path}: no data rows")
    num = np.concatenate(numeric)
    bad = first_nonfinite(num, KDD_NUMERIC)
    if bad is not None:
        raise DataError(f"{path}: data {bad} (NaN or infinite)")
    return KddTable(num, {c: np.concatenate(v) for c, v in symbolic.items()}, np.concatenate(labels))


class KddEncoder:
    """One-hot for ``protocol_type``/``service``/``flag`` and min-max scaling, fitted once.

    Features keep the file's column order, each symbolic column replaced by its one-hot
    group (``service=http``...).  Categories are the sorted values seen in ``fit``; a
    value unseen there encodes as an all-zero group.  Numeric columns are min-max scaled
    with the ``fit`` ranges (a column constant there, e.g. ``num_outbound_cmds``, scales
    to 0); one-hot columns stay 0/1.
    """

    def __init__(self) -> None:
        self.categories: dict[str, list[str]] | None = None
        self.lo: np.ndarray | None = None
        self.span: np.ndarray | None = None
        self.feature_names: list[str] = []

    def _raw(self, table: KddTable) -> np.ndarray:
        assert self.categories is not None
        blocks: list[np.ndarray] = []
        names: list[str] = []
        for _i, name in enumerate(KDD_FEATURES):
            if name in self.categories:
                levels = np.asarray(self.categories[name])
                vals = table.symbolic[name]
                pos = np.searchsorted(levels, vals)
                pos = np.minimum(pos, len(levels) - 1)
                hit = levels[pos] == vals
                onehot = np.zeros((len(vals), len(levels)), dtype=np.float64)
                onehot[np.nonzero(hit)[0], pos[hit]] = 1.0
                blocks.append(onehot)
                names.extend(f"{name}={lvl}" for lvl in levels)
            else:
                blocks.append(table.numeric[:, KDD_NUMERIC.index(name)][:, None])
                names.append(name)
        self.feature_names = names
        return np.concatenate(blocks, axis=1)

    def fit(self, table: KddTable) -> KddEncoder:
        self.categories = {c: sorted(set(table.symbolic[c].tolist())) for c in KDD_CATEGORICAL}
        X = self._raw(table)
        onehot = np.array(["=" in n for n in self.feature_names])
        # one-hot groups stay 0/1 (a value constant in ``fit`` must not shift to -1 later)
        self.lo = np.where(onehot, 0.0, X.min(axis=0))
        span = X.max(axis=0) - self.lo
        self.span = np.where(onehot | (span <= 0), 1.0, span)
        return self

    def transform(self, table: KddTable) -> np.ndarray:
        if self.categories is None or self.lo is None or self.span is None:
            raise ConfigError("KddEncoder.fit() first")
        return (self._raw(table) - self.lo) / self.span


def _is_normal(labels: np.ndarray) -> np.ndarray:
    """True where the label is ``normal`` (KDD99 writes ``normal.``)."""
    return np.char.lower(np.char.rstrip(labels.astype(str), ".")) == "normal"


def load_kddcup99(path: str | os.PathLike) -> TabularData:
    """The KDD Cup 1999 "10 percent" file, DAGMM/MemAE protocol (``normal.`` = anomaly).

    Min-max ranges and categories come from the whole file (as in DAGMM's preprocessing),
    before any train/test split.  ``info["attack"]`` keeps the attack names.
    """
    table = read_kdd_rows(path)
    enc = KddEncoder().fit(table)
    X = enc.transform(table)
    y = _is_normal(table.labels).astype(np.int64)
    return TabularData(
        X, y, list(enc.feature_names), name="kddcup99", info={"anomaly_class": "normal", "labels": table.labels}
    )


def find_kddcup99_file(root: str | os.PathLike) -> Path:
    """``root`` itself when it is a file, else the 10% file inside the folder ``root``."""
    r = Path(root)
    if r.is_file():
        return r
    for name in (
        "kddcup.data_10_percent.gz",
        "kddcup.data_10_percent",
        "kddcup.data_10_percent_corrected",
        "kddcup.data_10_percent_corrected.gz",
    ):
        if (r / name).is_file():
            return r / name
    raise DataError(f"no KDD Cup 1999 10% file (kddcup.data_10_percent[.gz]) in {r}")


def load_nsl_kdd(path: str | os.PathLike, encoder: KddEncoder | None = None) -> TabularData:
    """One NSL-KDD file; attacks = anomaly (1), ``normal`` = 0.  ``encoder``: one fitted on
    the train file (default: fitted on this file)."""
    table = read_kdd_rows(path)
    enc = encoder if encoder is not None else KddEncoder().fit(table)
    X = enc.transform(table)
    y = (~_is_normal(table.labels)).astype(np.int64)
    return TabularData(
        X, y, list(enc.feature_names), name=Path(path).stem, info={"anomaly_class": "attack", "labels": table.labels}
    )


def nsl_kdd_train_test(train_path: str | os.PathLike, test_path: str | os.PathLike) -> tuple[TabularData, TabularData]:
    """Train and test files encoded alike (categories and ranges from the train file)."""
    enc = KddEncoder().fit(read_kdd_rows(train_path))
    return load_nsl_kdd(train_path, enc), load_nsl_kdd(test_path, enc)
