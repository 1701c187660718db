"""``calibration``: does the threshold give the false-alarm rate it promises?

For each category, training-set size ``n`` and calibration method, one detector is
trained on ``n`` normal images and its threshold chosen for every target rate in
``fprs`` from the same normal scores; the realised rate is measured on normal images
it never saw, beside the rate the calibration expects (``k / (n_cal + 1)``).

* ``textures``: training crops are generated with seed 0; fresh normals with seed 1,
  ``n_fresh`` crops of the training region (the calibration's own distribution) and
  ``n_fresh`` of the held-out quadrant the test split's normals come from (a mild shift).
* ``magnetic-tile``: the first ``n`` images of the split's seeded normal pool (train +
  val, 762 at most); the realised rate is measured on the 190 defect-free test tiles.

Methods: ``holdout`` (the held-out ``val_fraction`` of the training images serves early
stopping, normalisation and the threshold) and ``cross-fit`` (every training image is
scored by one of ``calibration_folds`` models trained without it).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Subset

from reconad.protocols.results import Results, markdown_table, write_results
from reconad.protocols.settings import CalibrationSettings

KEYS = [
    "category",
    "n_train",
    "method",
    "target_fpr",
    "n_calibration",
    "expected_fpr",
    "realised_fpr",
    "realised_fpr_shifted",
    "train_seconds",
]


def _texture_sets(cat: str, n: int, s: CalibrationSettings, tmp: Path) -> tuple[Dataset, dict[str, Dataset]]:
    from reconad.data import build_image_dataset
    from reconad.data.textures import generate_textures

    size = s.image_size
    fit = generate_textures(
        tmp / f"fit{n}", categories=(cat,), image_size=size, n_train=n, n_test_good=0, n_test_defect_per_type=0, seed=0
    )
    fresh = generate_textures(
        tmp / "fresh",
        categories=(cat,),
        image_size=size,
        n_train=s.n_fresh,
        n_test_good=s.n_fresh,
        n_test_defect_per_type=0,
        seed=1,
    )
    build = lambda root, split: build_image_dataset("mvtec", str(root), category=cat, split=split, image_size=size)
    return build(fit, "train"), {"realised_fpr": build(fresh, "train"), "realised_fpr_shifted": build(fresh, "test")}


def _tile_sets(n: int, s: CalibrationSettings) -> tuple[Dataset, dict[str, Dataset]]:
    from reconad.data import build_image_dataset

    assert s.root is not None
    build = lambda split: build_image_dataset("magnetic-tile", s.root, split=split, image_size=s.image_size)
    pool: Dataset = ConcatDataset([build("train"), build("val")])
    test = build("test")
    normals = [i for i, lab in enumerate(test.labels) if lab == 0]
    return Subset(pool, list(range(min(n, len(pool))))), {"realised_fpr": Subset(test, normals)}  # type: ignore[arg-type]


def _rows(
    cat: str, n: int, method: str, s: CalibrationSettings, train: Dataset, fresh: dict[str, Dataset]
) -> list[dict[str, Any]]:
    """Train once; one row per target rate, all thresholds from the same normal scores."""
    from reconad.detector import Detector

    options = {"progress": False, **s.options, "calibration": method}
    t0 = time.perf_counter()
    det = Detector(s.model, image_size=s.image_size, **options).fit(train)
    train_s = time.perf_counter() - t0
    scores = {key: det.decision_function(ds) for key, ds in fresh.items()}
    cal = det.calibration_
    assert cal is not None
    rows = []
    for fpr in s.fprs:
        from reconad.calibration import threshold_for_fpr

        thr, expected = threshold_for_fpr(cal.normal_scores, fpr)
        row = {
            "category": cat,
            "n_train": len(train),  # type: ignore[arg-type]
            "method": method,
            "target_fpr": fpr,
            "n_calibration": cal.n,  # type: ignore[arg-type]
            "expected_fpr": expected,
            "threshold": thr,
            "train_seconds": train_s,
            "basis": cal.source,
        }
        row.update({key: float(np.mean(v > thr)) for key, v in scores.items()})
        rows.append(row)
    return rows


def _category(cat: str, s: CalibrationSettings) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in s.sizes():
            train, fresh = _tile_sets(n, s) if s.dataset == "magnetic-tile" else _texture_sets(cat, n, s, Path(tmp))
            for method in s.methods:
                part = _rows(cat, n, method, s, train, fresh)
                rows += part
                if s.echo:
                    for r in part:
                        shifted = f", shifted {r['realised_fpr_shifted']:.3f}" if "realised_fpr_shifted" in r else ""
                        print(
                            f"{cat} n={r['n_train']} {method}: target {r['target_fpr']:.3f} expected "
                            f"{r['expected_fpr']:.3f} realised {r['realised_fpr']:.3f}{shifted} "
                            f"({r['n_calibration']} calibration scores)",
                            flush=True,
                        )
    return rows


def run(settings: CalibrationSettings) -> dict[str, Any]:
    """Realised against expected false-alarm rates; write results.json / results.md."""
    from reconad.data.textures import DEFAULT_CATEGORIES

    s = settings
    cats = ["magnetic-tile"] if s.dataset == "magnetic-tile" else (s.categories or list(DEFAULT_CATEGORIES))
    rows = [r for cat in cats for r in _category(cat, s)]
    table = markdown_table(rows, [k for k in KEYS if any(k in r for r in rows)])
    payload = {
        "dataset": s.dataset,
        "image_size": s.image_size,
        "sizes": s.sizes(),
        "methods": list(s.methods),
        "fprs": list(s.fprs),
        "n_fresh": s.n_fresh,
        "per_category": rows,
    }
    if s.dataset == "magnetic-tile":
        data = f"magnetic tiles at {s.root}: training images from the seeded normal pool; realised rates on the 190 defect-free test tiles"
    else:
        data = (
            f"generated texture crops at {s.image_size} px (seed 0) for training; {s.n_fresh} + {s.n_fresh} "
            "fresh normals (seed 1): the training region and the held-out quadrant (shifted)"
        )
    doc = write_results(
        s.out, Results("calibration", "false alarms at a target rate", data, s.command, dict(s.options), payload, table)
    )
    if s.echo:
        print(table)
    return doc
