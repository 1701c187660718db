"""``calibration``: does the threshold give the false-alarm rate it promises?

For each category, training-set size ``n`` and calibration method, one detector is
trained on ``n`` normal images and its threshold chosen for every target rate in
``fpr`` from the same normal scores; the realised rate is measured on normal images
it never saw, beside the rate the calibration expects (``k / (n_cal + 1)``).

* ``textures``: training crops are generated with seed 0; fresh normals with seed 1,
  ``n_fresh`` crops of the training region (the calibration's own distribution) and
  ``n_fresh`` of the held-out quadrant the test split's normals come from (a mild shift).
* ``magnetic-tile``: the first ``n`` images of the split's seeded normal pool (train +
  val, 762 at most); the realised rate is measured on the 190 defect-free test tiles.

Methods: ``split`` (the default: a calibration share set aside before training, which
no part of the model sees), ``holdout`` (the held-out ``val_fraction`` of the training
images serves early stopping, normalisation and the threshold: the default before
§22) and ``cross-fit`` (every training image is scored by one of ``calibration_folds``
models trained without it).

Each row also gives the method's own 90 % band for the realised rate on that many fresh
normals (``realised_rate_band`` of its calibration count, beta-binomial), whether the realised rate lies in
it, the image AUROC on a test set with defects (textures: ``n_defects`` generated
defects of each kind among the shifted normals; tiles: the test split), and the
training and scoring seconds.  ``summary`` gives, per method, target and size, the mean
absolute deviation of the realised rate from the target over the sets.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import ConcatDataset, Dataset, Subset

from reconad.data.sizes import dataset_size
from reconad.protocols.results import Results, markdown_table, write_results
from reconad.protocols.settings import CalibrationSettings

KEYS = [
    "category",
    "n_train",
    "method",
    "target_fpr",
    "n_calibration",
    "expected_fpr",
    "band_low",
    "band_high",
    "realised_fpr",
    "in_band",
    "realised_fpr_shifted",
    "image_auroc",
    "train_seconds",
    "score_ms_per_image",
]
SUMMARY_KEYS = ["method", "target_fpr", "n_train", "sets", "mean_abs_deviation", "in_band", "mean_image_auroc"]


def texture_sets(cat: str, n: int, s: CalibrationSettings, tmp: Path) -> tuple[Dataset, dict[str, Dataset]]:
    """(``n`` generated training crops of texture ``cat``, the fresh sets by what they measure:
    ``realised_fpr`` (the training region), ``realised_fpr_shifted`` (the held-out quadrant's
    normals) and ``auroc`` (its test split, with defects)); generated under ``tmp``."""
    from reconad.data import build_image_dataset
    from reconad.data.textures import generate_textures

    size = s.image_size
    fit = generate_textures(
        tmp / f"fit{n}", categories=(cat,), image_size=size, n_train=n, n_test_good=0, n_test_defect_per_type=0, seed=0
    )
    fresh_root = tmp / "fresh"
    if not (fresh_root / cat).is_dir():  # the same fresh images for every size
        generate_textures(
            fresh_root,
            categories=(cat,),
            image_size=size,
            n_train=s.n_fresh,
            n_test_good=s.n_fresh,
            n_test_defect_per_type=s.n_defects,
            seed=1,
        )
    build = lambda root, split: build_image_dataset("mvtec", str(root), category=cat, split=split, image_size=size)
    test = build(fresh_root, "test")
    normals = [i for i, lab in enumerate(test.labels) if lab == 0]
    sets = {"realised_fpr": build(fresh_root, "train"), "realised_fpr_shifted": Subset(test, normals)}
    if s.n_defects:
        sets["auroc"] = test
    return build(fit, "train"), sets


def tile_sets(n: int, s: CalibrationSettings) -> tuple[Dataset, dict[str, Dataset]]:
    """(the first ``n`` of the magnetic tiles' seeded normal pool, the fresh sets: ``realised_fpr``
    (the defect-free test tiles) and ``auroc`` (the whole test split))."""
    from reconad.data import build_image_dataset

    assert s.root is not None
    build = lambda split: build_image_dataset("magnetic-tile", s.root, split=split, image_size=s.image_size)
    pool: ConcatDataset = ConcatDataset([build("train"), build("val")])
    test = build("test")
    normals = [i for i, lab in enumerate(test.labels) if lab == 0]
    fresh = {"realised_fpr": Subset(test, normals), "auroc": test}
    return Subset(pool, list(range(min(n, len(pool))))), fresh


def _fitted(
    method: str, s: CalibrationSettings, train: Dataset, fresh: dict[str, Dataset], fpr: float | None
) -> dict[str, Any]:
    """Train one detector; its calibration, fresh scores, AUROC and costs."""
    from reconad.data.labels import dataset_labels
    from reconad.detector import Detector
    from reconad.metrics import image_auroc

    options = {"progress": False, **s.options, "calibration": method, "fpr": fpr}
    t0 = time.perf_counter()
    det = Detector(s.model_name, image_size=s.image_size, **options).fit(train)
    train_s = time.perf_counter() - t0
    t0, n_scored, scores = time.perf_counter(), 0, {}
    for key, ds in fresh.items():
        scores[key] = det.decision_function(ds)
        n_scored += dataset_size(ds)
    score_ms = 1000 * (time.perf_counter() - t0) / max(n_scored, 1)
    auroc = None
    if "auroc" in fresh:
        auroc = image_auroc(dataset_labels(fresh["auroc"]), scores.pop("auroc"))
    assert det.calibration_ is not None
    return {"cal": det.calibration_, "scores": scores, "auroc": auroc, "train_s": train_s, "score_ms": score_ms}


def _row(cat: str, n: int, method: str, fpr: float, fit: dict[str, Any] | None) -> dict[str, Any]:
    """One target rate of one fitted detector (``fit`` None: the split cannot resolve it)."""
    from reconad.calibration import images_needed, realised_rate_band, threshold_for_fpr

    row: dict[str, Any] = {"category": cat, "n_train": n, "method": method, "target_fpr": fpr}
    if fit is None:
        return {**row, "note": f"needs {images_needed(fpr)} images"}
    cal = fit["cal"]
    thr, expected = threshold_for_fpr(cal.normal_scores, fpr)
    lo, hi = realised_rate_band(cal.n, fpr, n_new=len(fit["scores"]["realised_fpr"]))
    row.update(
        {
            "n_calibration": cal.n,
            "expected_fpr": expected,
            "resolved": fpr >= 1.0 / (cal.n + 1) - 1e-12,
            "band_low": lo,
            "band_high": hi,
            "threshold": thr,
            "image_auroc": fit["auroc"],
            "train_seconds": fit["train_s"],
            "score_ms_per_image": fit["score_ms"],
            "basis": cal.source,
        }
    )
    row.update({key: float(np.mean(v > thr)) for key, v in fit["scores"].items()})
    row["in_band"] = bool(lo <= row["realised_fpr"] <= hi)
    return row


def _rows(
    cat: str, n: int, method: str, s: CalibrationSettings, train: Dataset, fresh: dict[str, Dataset]
) -> list[dict[str, Any]]:
    """One row per target rate.  ``split`` sizes its calibration share by the target, so it
    trains once per target (as a user giving ``fpr`` would); the others train once."""
    from reconad.calibration import images_needed

    if method != "split":
        once = _fitted(method, s, train, fresh, None)
        return [_row(cat, n, method, fpr, once) for fpr in s.fpr]
    return [
        _row(cat, n, method, fpr, _fitted(method, s, train, fresh, fpr) if n >= images_needed(fpr) else None)
        for fpr in s.fpr
    ]


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per method, target and size: mean |realised - target| over the sets, how many sets
    lie inside the method's own 90 % band, and the mean image AUROC."""
    out = []
    keys = sorted({(r["method"], r["target_fpr"], r["n_train"]) for r in rows}, key=lambda k: (k[0], -k[1], k[2]))
    for method, fpr, n in keys:
        part = [r for r in rows if (r["method"], r["target_fpr"], r["n_train"]) == (method, fpr, n)]
        aurocs = [r["image_auroc"] for r in part if r.get("image_auroc") is not None]
        out.append(
            {
                "method": method,
                "target_fpr": fpr,
                "n_train": n,
                "sets": len(part),
                "mean_abs_deviation": float(np.mean([abs(r["realised_fpr"] - fpr) for r in part])),
                "in_band": f"{sum(r['in_band'] for r in part)}/{len(part)}",
                "mean_image_auroc": float(np.mean(aurocs)) if aurocs else None,
            }
        )
    return out


def _category(cat: str, s: CalibrationSettings) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in s.sizes():
            train, fresh = tile_sets(n, s) if s.dataset == "magnetic-tile" else texture_sets(cat, n, s, Path(tmp))
            for method in s.methods:
                part = _rows(cat, n, method, s, train, fresh)
                rows += part
                if s.echo:
                    for r in part:
                        if "note" in r:
                            print(
                                f"{cat} n={r['n_train']} {method}: target {r['target_fpr']:.3f} {r['note']}", flush=True
                            )
                            continue
                        shifted = f", shifted {r['realised_fpr_shifted']:.3f}" if "realised_fpr_shifted" in r else ""
                        print(
                            f"{cat} n={r['n_train']} {method}: target {r['target_fpr']:.3f} expected "
                            f"{r['expected_fpr']:.3f} realised {r['realised_fpr']:.3f}{shifted} "
                            f"({r['n_calibration']} calibration scores, band {r['band_low']:.3f}-{r['band_high']:.3f}, "
                            f"AUROC {r['image_auroc'] if r['image_auroc'] is not None else float('nan'):.4f}, "
                            f"train {r['train_seconds']:.0f} s)",
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
    measured = [r for r in rows if "realised_fpr" in r]
    table += "\n\n" + markdown_table(summary(measured), SUMMARY_KEYS)
    payload = {
        "dataset": s.dataset,
        "image_size": s.image_size,
        "sizes": s.sizes(),
        "methods": list(s.methods),
        "fprs": list(s.fpr),
        "n_fresh": s.n_fresh,
        "per_category": rows,
        "summary": summary(measured),
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
