"""Tiny separable problems for the reconstruction models (rows and images)."""

from __future__ import annotations

import numpy as np


def plane_rows(n: int, rng: np.random.Generator, dim: int = 10) -> np.ndarray:
    """Rows near a fixed 2-D plane in ``dim`` dimensions."""
    basis = np.random.default_rng(123).normal(size=(2, dim))
    return (rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, dim))).astype(np.float32)


def table_toy(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train normals, test rows, test labels): anomalies lie off the normal plane."""
    rng = np.random.default_rng(seed)
    train = plane_rows(300, rng)
    test = np.vstack([plane_rows(100, rng), 1.5 * rng.normal(size=(40, 10)).astype(np.float32)])
    return train, test, np.r_[np.zeros(100), np.ones(40)]


def bar_images(n: int, rng: np.random.Generator, vertical: bool, size: int = 16) -> np.ndarray:
    """(n, size, size) uint8: one bright bar, horizontal (normal) or vertical (anomaly)."""
    out = np.zeros((n, size, size), dtype=np.uint8)
    pos = rng.integers(2, size - 3, n)
    for i, p in enumerate(pos):
        if vertical:
            out[i, 2:-2, p : p + 2] = 255
        else:
            out[i, p : p + 2, 2:-2] = 255
    return out


def image_toy(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train = bar_images(160, rng, vertical=False)
    test = np.concatenate([bar_images(30, rng, vertical=False), bar_images(30, rng, vertical=True)])
    return train, test, np.r_[np.zeros(30), np.ones(30)]


def digits_one_class(normal: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train images of digit ``normal``, test images, labels 1 = another digit): scikit-learn's
    8 px digits on the one-class protocol's split.  Real strokes, a few seconds to fit, and a
    set where a score that follows ink ranks some classes upside down."""
    from reconad.data.class_datasets import load_sklearn_digits

    (train_x, train_y), (test_x, test_y) = load_sklearn_digits("train"), load_sklearn_digits("test")
    return train_x[train_y == normal], test_x, (test_y != normal).astype(int)


def corner_rows(n: int, rng: np.random.Generator, dim: int = 12) -> np.ndarray:
    """Rows near six fixed corners of the unit cube with unequal shares (40% down to 4%):
    records of a few kinds, as one-hot coded traffic is."""
    corners = np.random.default_rng(7).uniform(0, 1, size=(6, dim)).round()
    share = np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    kind = rng.choice(len(corners), size=n, p=share)
    return (corners[kind] + 0.03 * rng.normal(size=(n, dim))).astype(np.float32)


def corner_toy(seed: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train normals, test rows, test labels): anomalies sit near other corners of the cube."""
    rng = np.random.default_rng(seed)
    train = corner_rows(600, rng)
    others = rng.uniform(0, 1, size=(60, 12)).round() + 0.03 * rng.normal(size=(60, 12))
    test = np.vstack([corner_rows(200, rng), others.astype(np.float32)])
    return train, test, np.r_[np.zeros(200), np.ones(60)]
