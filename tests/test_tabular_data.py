"""Tabular loaders on small fixtures written in each real format (CSV, npz, KDD99, NSL-KDD)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from reconad.data.table_files import (
    KDD_FEATURES,
    adbench_names,
    find_kddcup99_file,
    load_adbench,
    load_csv,
    load_kddcup99,
    load_npz,
    load_nsl_kdd,
    nsl_kdd_train_test,
)
from reconad.errors import ConfigError, DataError

# ----------------------------------------------------------------------------- CSV


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_numeric_and_one_hot_columns_with_named_anomaly_values(tmp_path):
    p = write(tmp_path / "t.csv", "a,colour,b,label\n1,red,2.5,ok\n2,blue,3.5,bad\n3,red,-1,ok\n")
    d = load_csv(p, label_column="label", anomaly_values=["bad"])
    assert d.feature_names == ["a", "colour=blue", "colour=red", "b"]
    np.testing.assert_array_equal(d.X, [[1, 0, 1, 2.5], [2, 1, 0, 3.5], [3, 0, 1, -1]])
    np.testing.assert_array_equal(d.y, [0, 1, 0])
    assert d.X.dtype == np.float64 and d.y.dtype == np.int64


def test_csv_normal_values_feature_subset_and_01_labels(tmp_path):
    p = write(tmp_path / "t.csv", "a,b,c,y\n1,2,3,normal\n4,5,6,attack\n7,8,9,other\n")
    d = load_csv(p, label_column="y", feature_columns=["c", "a"], normal_values=["normal"])
    assert d.feature_names == ["c", "a"]
    np.testing.assert_array_equal(d.X, [[3, 1], [6, 4], [9, 7]])
    np.testing.assert_array_equal(d.y, [0, 1, 1])
    p2 = write(tmp_path / "u.csv", "a,y\n1,0\n2,1\n3,1.0\n")
    np.testing.assert_array_equal(load_csv(p2, label_column="y").y, [0, 1, 1])
    # no label column: unlabelled rows to fit on
    assert load_csv(p2).y.sum() == 0 and load_csv(p2).feature_names == ["a", "y"]


def test_csv_errors_name_the_problem(tmp_path):
    p = write(tmp_path / "t.csv", "a,colour,y\n1,red,0\n2,blue,1\n")
    with pytest.raises(DataError, match="'colour' is not numeric"):
        load_csv(p, label_column="y", categorical="error")
    with pytest.raises(DataError, match="no label column 'label'"):
        load_csv(p, label_column="label")
    with pytest.raises(DataError, match="no column"):
        load_csv(p, label_column="y", feature_columns=["a", "zz"])
    with pytest.raises(ConfigError):
        load_csv(p, label_column="y", feature_columns=["a", "y"])
    with pytest.raises(ConfigError):
        load_csv(p, label_column="y", anomaly_values=["1"], normal_values=["0"])
    bad_label = write(tmp_path / "b.csv", "a,y\n1,yes\n2,no\n")
    with pytest.raises(DataError, match="0/1"):
        load_csv(bad_label, label_column="y")
    empty_cell = write(tmp_path / "e.csv", "a,b,y\n1,,0\n2,3,1\n")
    with pytest.raises(DataError, match="empty cells"):
        load_csv(empty_cell, label_column="y")
    ragged = write(tmp_path / "r.csv", "a,y\n1,0,5\n")
    with pytest.raises(DataError, match="line 2"):
        load_csv(ragged, label_column="y")
    with pytest.raises(DataError, match="no such file"):
        load_csv(tmp_path / "missing.csv")


# ----------------------------------------------------------------------- ADBench npz


def test_npz_and_adbench_names(tmp_path):
    X = np.arange(12, dtype=np.int16).reshape(4, 3)
    np.savez(tmp_path / "6_cardio.npz", X=X, y=np.array([0, 0, 1, 0]))
    np.savez(tmp_path / "42_WBC.npz", X=np.ones((3, 2)), y=np.array([0, 1, 0], dtype=np.int32))
    d = load_npz(tmp_path / "6_cardio.npz")
    assert d.X.dtype == np.float64 and d.X.shape == (4, 3) and d.n_anomalies == 1
    assert d.feature_names == ["x0", "x1", "x2"]
    assert set(adbench_names(tmp_path)) == {"cardio", "WBC"}
    assert load_adbench("cardio", tmp_path).name == "cardio"
    assert load_adbench("wbc", tmp_path).name == "WBC"  # case-insensitive
    assert load_adbench("42_WBC.npz", tmp_path).X.shape == (3, 2)
    with pytest.raises(DataError, match=r"unknown dataset 'nope'.*available: WBC, cardio"):
        load_adbench("nope", tmp_path)


def test_npz_refuses_wrong_contents(tmp_path):
    np.savez(tmp_path / "a.npz", X=np.ones((3, 2)))
    with pytest.raises(DataError, match="'X' and 'y'"):
        load_npz(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", X=np.ones((3, 2)), y=np.array([0, 2, 1]))
    with pytest.raises(DataError, match="0 \\(normal\\) and 1"):
        load_npz(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", X=np.ones((3, 2)), y=np.array([0, 1]))
    with pytest.raises(DataError, match="2 labels for 3 rows"):
        load_npz(tmp_path / "c.npz")
    (tmp_path / "d.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_npz(tmp_path / "d.npz")


# ------------------------------------------------------------------ KDD 99 / NSL-KDD


def kdd_line(
    proto: str, service: str, flag: str, src_bytes: float, label: str, count: float = 1, difficulty: int | None = None
) -> str:
    """One line in the KDD format: 41 features (num_outbound_cmds always 0) + label."""
    fields = ["0"] * 41
    fields[1], fields[2], fields[3] = proto, service, flag
    fields[4] = str(src_bytes)
    fields[KDD_FEATURES.index("count")] = str(count)
    fields[KDD_FEATURES.index("same_srv_rate")] = "1.00"
    fields.append(label)
    if difficulty is not None:
        fields.append(str(difficulty))
    return ",".join(fields)


KDD_LINES = [
    kdd_line("tcp", "http", "SF", 181, "normal."),
    kdd_line("tcp", "http", "SF", 239, "normal."),
    kdd_line("icmp", "ecr_i", "SF", 1032, "smurf.", count=511),
    kdd_line("icmp", "ecr_i", "SF", 1032, "smurf.", count=511),
    kdd_line("tcp", "private", "S0", 0, "neptune.", count=123),
    kdd_line("udp", "private", "SF", 105, "normal.", count=2),
]


def test_kddcup99_protocol_one_hot_min_max_and_normal_is_the_anomaly(tmp_path):
    path = tmp_path / "kddcup.data_10_percent.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(KDD_LINES) + "\n")
    d = load_kddcup99(path)
    # 38 numeric columns + protocol (3) + service (3: ecr_i, http, private) + flag (2: S0, SF)
    assert d.X.shape == (6, 38 + 3 + 3 + 2)
    np.testing.assert_array_equal(d.y, [1, 1, 0, 0, 0, 1])
    assert d.info["anomaly_class"] == "normal"
    assert d.X.min() == 0.0 and d.X.max() == 1.0
    names = d.feature_names
    assert names[:4] == ["duration", "protocol_type=icmp", "protocol_type=tcp", "protocol_type=udp"]
    assert "service=http" in names and "flag=S0" in names and "src_bytes" in names
    src = d.X[:, names.index("src_bytes")]
    np.testing.assert_allclose(src, np.array([181, 239, 1032, 1032, 0, 105]) / 1032)
    assert np.all(d.X[:, names.index("num_outbound_cmds")] == 0)  # constant column -> 0
    onehot = d.X[:, [i for i, n in enumerate(names) if n.startswith("service=")]]
    np.testing.assert_array_equal(onehot.sum(axis=1), 1)
    # the folder finder and a plain (not gzipped) file give the same table
    assert find_kddcup99_file(tmp_path) == path
    plain = tmp_path / "plain.txt"
    plain.write_text("\n".join(KDD_LINES) + "\n")
    np.testing.assert_array_equal(load_kddcup99(plain).X, d.X)


def test_kdd_reader_refuses_malformed_rows(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text(KDD_LINES[0] + "\n" + "0,tcp,http\n")
    with pytest.raises(DataError, match="line 2 has 3 fields"):
        load_kddcup99(bad)
    word = tmp_path / "word.txt"
    word.write_text(KDD_LINES[0].replace("181", "lots", 1) + "\n")
    with pytest.raises(DataError, match="not a number"):
        load_kddcup99(word)
    with pytest.raises(DataError, match="no KDD Cup 1999 10% file"):
        find_kddcup99_file(tmp_path / "nothing-here")


NSL_HEADER = ",".join(KDD_FEATURES) + ",attack,level"


def nsl_lines(rows: list[tuple]) -> str:
    return "\n".join(kdd_line(*r[:5], difficulty=r[5]) for r in rows) + "\n"


def test_nsl_kdd_attacks_are_the_anomaly_with_or_without_header(tmp_path):
    rows = [
        ("tcp", "ftp_data", "SF", 491, "normal", 20),
        ("udp", "other", "SF", 146, "normal", 15),
        ("tcp", "private", "S0", 0, "neptune", 19),
        ("tcp", "http", "SF", 232, "normal", 21),
    ]
    plain = write(tmp_path / "KDDTrain+.txt", nsl_lines(rows))
    headed = write(tmp_path / "KDDTrain+_20Percent.txt", NSL_HEADER + "\n" + nsl_lines(rows))
    a, b = load_nsl_kdd(plain), load_nsl_kdd(headed)
    np.testing.assert_array_equal(a.y, [0, 0, 1, 0])
    assert a.info["anomaly_class"] == "attack"
    np.testing.assert_array_equal(a.X, b.X)
    assert a.X.shape == (4, 38 + 2 + 4 + 2)  # the difficulty level is not a feature
    assert "level" not in a.feature_names


def test_nsl_kdd_test_file_is_encoded_with_the_train_file(tmp_path):
    train = write(
        tmp_path / "train.txt",
        nsl_lines([("tcp", "http", "SF", 100, "normal", 21), ("udp", "private", "SF", 200, "satan", 18)]),
    )
    test = write(
        tmp_path / "test.txt",
        NSL_HEADER
        + "\n"
        + nsl_lines([("tcp", "http", "SF", 300, "normal", 21), ("icmp", "eco_i", "REJ", 150, "ipsweep", 9)]),
    )
    tr, te = nsl_kdd_train_test(train, test)
    assert tr.feature_names == te.feature_names
    names = te.feature_names
    np.testing.assert_array_equal(te.y, [0, 1])
    # ranges come from the train file: 300 bytes scales above 1
    assert te.X[0, names.index("src_bytes")] == pytest.approx(2.0)
    # categories come from the train file: icmp / eco_i / REJ are unseen -> all-zero groups
    for prefix in ("protocol_type=", "service=", "flag="):
        cols = [i for i, n in enumerate(names) if n.startswith(prefix)]
        assert te.X[1, cols].sum() == 0 and te.X[0, cols].sum() == 1
