"""Train one model on a one-class image set, one class at a time, and score its test set several ways.

The shared body of the per-model diagnostics in ``benchmarks/`` (``alocc_scores.py``,
``adae_scores.py``, ``alad_scores.py``, ``egbad_scores.py``, ``skip_ganomaly_scores.py``):
each supplies ``rows(model, images) -> {name: scores}``, computed by the same trained model
during the normal ``decision_function`` pass, so the AUROCs compare like with like.  The
data is MNIST-10k unless ``spec`` says otherwise: ``{"dataset": "fashion-mnist", "root":
"...", "train_per_class": 800, "test_per_class": 200}`` (the seeded draws of the one-class
benchmark for the training images; a seeded, per-class draw of the test images, to keep a
diagnostic short).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from reconad.data.class_datasets import load_one_class_set
from reconad.detector import Detector
from reconad.metrics import image_auroc
from reconad.protocols.one_class import subsample

__all__ = ["Rows", "load_class", "score_variants", "score_variants_per_class", "variants_main", "variants_parser"]

Rows = Callable[[Any, torch.Tensor], dict[str, torch.Tensor]]


def load_class(spec: dict[str, Any], normal_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training images of the class, test images, test labels 1 = anomalous) as ``spec`` says."""
    data = load_one_class_set(spec.get("dataset", "mnist-10k"), spec.get("root"))
    own = subsample(np.flatnonzero(data.train_y == normal_class), spec.get("train_per_class"), normal_class)
    n_test = spec.get("test_per_class")
    test = np.concatenate([subsample(np.flatnonzero(data.test_y == c), n_test, 1000 + c) for c in range(10)])
    return data.train_x[own], data.test_x[test], (data.test_y[test] != normal_class).astype(int)


def score_variants(
    model_name: str, normal_class: int, opts: dict[str, Any], rows: Rows, spec: dict[str, Any] | None = None
) -> None:
    """Fit ``model_name`` with the one-class benchmark's settings (28 px, seed 0 unless
    ``opts`` says), print the logged losses (every 4th epoch), then the AUROC and the
    normal / anomalous means of each row."""
    torch.set_num_threads(1)
    x, test_x, y = load_class(spec or {}, normal_class)
    t0 = time.time()
    det = Detector(model_name, **{"image_size": 28, "seed": 0, "progress": False, **opts}).fit(x)
    print(f"fit {time.time() - t0:.0f}s")
    assert det.history_ is not None
    for key, values in det.history_.logs.items():
        print(key, " ".join(f"{v:.3g}" for v in values[::4]))
    model: Any = det.model_  # its score is wrapped below: the rows are computed in the same pass
    seen: dict[str, list[np.ndarray]] = {}
    plain = model.score

    def variants(images: torch.Tensor) -> Any:
        with torch.no_grad():
            for k, v in rows(model, images).items():
                seen.setdefault(k, []).append(v.reshape(len(images)).numpy())
        return plain(images)

    model.score = variants
    print("default", round(image_auroc(y, det.decision_function(test_x)), 4))
    for k, parts in seen.items():
        v = np.concatenate(parts)
        print(f"{k:13s} AUROC {image_auroc(y, v):.4f}  normal {v[y == 0].mean():.4g}  anomalous {v[y == 1].mean():.4g}")


def score_variants_per_class(
    model_name: str, classes: list[int], opts: dict[str, Any], rows: Rows, spec: dict[str, Any] | None = None
) -> None:
    """:func:`score_variants` for each class of ``classes`` in turn."""
    for normal_class in classes:
        print(f"class {normal_class}", flush=True)
        score_variants(model_name, normal_class, opts, rows, spec)


def variants_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line of the diagnostics scripts: classes, Detector options, data spec."""
    ap = argparse.ArgumentParser(description=(doc or "").strip().splitlines()[0])
    ap.add_argument("classes", nargs="?", default="0", help="comma-separated normal classes (default 0)")
    ap.add_argument("options", nargs="?", type=json.loads, default={}, help="extra Detector options (JSON object)")
    ap.add_argument(
        "data", nargs="?", type=json.loads, default={}, help='the data (JSON), e.g. {"dataset": "fashion-mnist"}'
    )
    return ap


def variants_main(model_name: str, rows: Rows, doc: str | None, argv: list[str] | None = None) -> None:
    """:func:`score_variants_per_class` with the classes, options and data of the command line."""
    args = variants_parser(doc).parse_args(argv)
    classes = [int(c) for c in args.classes.split(",") if c.strip()]
    score_variants_per_class(model_name, classes, args.options, rows, args.data)
