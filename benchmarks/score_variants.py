"""Train one model on one-class image sets, one class at a time, and score each test set several ways.

The shared body of the per-model diagnostics (``alocc_scores.py``, ``adae_scores.py``,
``alad_scores.py``): each supplies ``rows(model, images) -> {name: scores}``, computed
by the same trained model during the normal ``decision_function`` pass, so the AUROCs
compare like with like.  The data is MNIST-10k unless a third argument (JSON) says
otherwise: ``{"dataset": "fashion-mnist", "root": "...", "train_per_class": 800,
"test_per_class": 200}`` (the seeded draws of the one-class benchmark for the training
images; a seeded, per-class draw of the test images, to keep a diagnostic short).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from reconad.data.class_datasets import load_one_class_set
from reconad.detector import Detector
from reconad.metrics import image_auroc
from reconad.protocols.one_class import subsample

Rows = Callable[[Any, torch.Tensor], dict[str, torch.Tensor]]


def load(spec: dict[str, Any], normal_class: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(training images of the class, test images, test labels 1 = anomalous) as ``spec`` says."""
    data = load_one_class_set(spec.get("dataset", "mnist-10k"), spec.get("root"))
    own = subsample(np.flatnonzero(data.train_y == normal_class), spec.get("train_per_class"), normal_class)
    n_test = spec.get("test_per_class")
    test = np.concatenate([subsample(np.flatnonzero(data.test_y == c), n_test, 1000 + c) for c in range(10)])
    return data.train_x[own], data.test_x[test], (data.test_y[test] != normal_class).astype(int)


def run(
    model_name: str, normal_class: int, opts: dict[str, Any], rows: Rows, spec: dict[str, Any] | None = None
) -> None:
    """Fit ``model_name`` with the one-class benchmark's settings (28 px, seed 0 unless
    ``opts`` says), print the logged losses (every 4th epoch), then the AUROC and the
    normal / anomalous means of each row."""
    torch.set_num_threads(1)
    x, test_x, y = load(spec or {}, normal_class)
    t0 = time.time()
    det = Detector(model_name, **{"image_size": 28, "seed": 0, "progress": False, **opts}).fit(x)
    print(f"fit {time.time() - t0:.0f}s")
    assert det.history_ is not None
    for key, values in det.history_.logs.items():
        print(key, " ".join(f"{v:.3g}" for v in values[::4]))
    model, seen = det.model_, {}
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


def main(model_name: str, rows: Rows) -> None:
    """``run`` for each class of the command line (comma-separated, default 0) with the
    Detector options (JSON, default none) given after it."""
    classes = sys.argv[1].split(",") if len(sys.argv) > 1 else ["0"]
    opts = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    spec = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
    for normal_class in classes:
        print(f"class {normal_class}", flush=True)
        run(model_name, int(normal_class), opts, rows, spec)
