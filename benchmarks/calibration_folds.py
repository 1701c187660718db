"""Cross-fitted calibration taken apart: each fold model's scores beside the deployed model's.

Usage (from the project root, in the project's venv):

    python benchmarks/calibration_folds.py '{"set": "gravel", "size": 128, "n": 120, "out": "runs/calfolds-gravel.npz"}'

``set`` is a texture (``grass``, ``gravel``, ``brick``; the calibration protocol's
generated crops) or ``magnetic-tile`` (with ``root``).  It trains the deployed HFR
model and the ``folds`` fold models exactly as ``calibration="cross-fit"`` does (the
same fold order), scores the fresh normals with every one of them, saves every score to
``out`` and prints, at each target rate, the realised false-alarm rate of: the held-out
threshold, today's cross-fitted threshold (pooled out-of-fold scores applied to the
deployed model), and the cross-conformal rule that scores a new image with every fold
model (p = (1 + sum_k #{i in fold k: s_k(i) >= s_k(x)}) / (n + 1), flag p <= fpr).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset, Subset

from reconad.calibration import threshold_for_fpr
from reconad.detector import Detector
from reconad.protocols.calibration import texture_sets, tile_sets
from reconad.protocols.settings import CalibrationSettings


def _sets(spec: dict[str, Any], tmp: Path) -> tuple[Dataset, Dataset]:
    settings = CalibrationSettings(
        dataset="magnetic-tile" if spec["set"] == "magnetic-tile" else "textures",
        root=spec.get("root"),
        image_size=int(spec.get("size", 128)),
    )
    if spec["set"] == "magnetic-tile":
        train, fresh = tile_sets(int(spec.get("n", 120)), settings)
    else:
        train, fresh = texture_sets(spec["set"], int(spec.get("n", 120)), settings, tmp)
    return train, fresh["realised_fpr"]


def scores(spec: dict[str, Any]) -> dict[str, np.ndarray]:
    """Every model's scores: ``full_*`` the deployed model, ``f{k}_*`` fold k's."""
    size, k = int(spec.get("size", 128)), int(spec.get("folds", 5))
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        train, fresh = _sets(spec, Path(tmp))
        n = len(train)  # type: ignore[arg-type]
        full = Detector("hfr", image_size=size, progress=False, calibration="holdout").fit(train)  # as in §12.4
        out["full_fresh"], out["full_val"] = full.decision_function(fresh), full.val_scores_
        order = np.random.default_rng(full.train_config.seed + 1).permutation(n)  # the cross-fit's order
        for i, fold in enumerate(np.array_split(order, k)):
            fold = np.sort(fold)
            rest = np.setdiff1d(np.arange(n), fold)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sub = Detector("hfr", image_size=size, progress=False, calibration="holdout")
                sub = sub.fit(Subset(train, rest.tolist()))
            out[f"f{i}_oof"] = sub.decision_function(Subset(train, fold.tolist()))
            out[f"f{i}_fresh"] = sub.decision_function(fresh)
            print(f"fold {i}: out-of-fold median {np.median(out[f'f{i}_oof']):.3f}, fresh median "
                  f"{np.median(out[f'f{i}_fresh']):.3f}", flush=True)  # fmt: skip
    print(f"deployed model: fresh median {np.median(out['full_fresh']):.3f}", flush=True)
    return out


def realised(s: dict[str, np.ndarray], fpr: float, k: int) -> dict[str, float]:
    """Realised false-alarm rate on the fresh normals of each threshold rule."""
    oof = [s[f"f{i}_oof"] for i in range(k)]
    holdout = threshold_for_fpr(np.sort(s["full_val"]), fpr)[0]
    pooled = threshold_for_fpr(np.sort(np.concatenate(oof)), fpr)[0]
    count = sum((oof[i][None, :] >= s[f"f{i}_fresh"][:, None]).sum(axis=1) for i in range(k))
    p = (1.0 + count) / (sum(len(o) for o in oof) + 1.0)
    return {
        "holdout": float(np.mean(s["full_fresh"] > holdout)),
        "cross-fit": float(np.mean(s["full_fresh"] > pooled)),
        "cross-conformal": float(np.mean(p <= fpr)),
    }


def main(spec: dict[str, Any]) -> None:
    s = scores(spec)
    if spec.get("out"):
        np.savez(spec["out"], **s)  # type: ignore[arg-type]
    for fpr in spec.get("fprs", [0.05, 0.01]):
        rates = realised(s, float(fpr), int(spec.get("folds", 5)))
        print(f"target {fpr:g}: " + ", ".join(f"{key} {value:.3f}" for key, value in rates.items()), flush=True)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", type=json.loads, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    main(parser().parse_args().spec)
