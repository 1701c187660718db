"""``model="auto"`` on one data set: every candidate's synthetic and real figures, the pick, its regret.

Usage (from the project root, in the project's venv):

    python benchmarks/auto_regret.py '{"dataset": "textures", "root": "demo-data/textures", "category": "grass",
        "size": 128, "out": "runs/auto-grass-128.json",
        "extra": {"hfr-fnoise": {"model": "hfr", "feature_noise": 0.5}}}'

``reconad.selection.fit_auto`` trains the default candidates (and the ``extra`` ones, measured
beside them but never chosen) on the training split with the Detector's held-out normals,
(the dataset's own validation split where it has one, e.g. the magnetic tiles), scores the
validation generator's synthetic defects, and picks; then every candidate is
scored on the real test split the way ``reconad test`` scores (``reconad.metrics.evaluate``).
Regret = the best default candidate's real AUROC minus the pick's (image and pixel).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from reconad import Detector
from reconad.data import WITH_VAL_SPLIT, build_image_dataset
from reconad.data.records import collate_images
from reconad.metrics import evaluate
from reconad.selection import CANDIDATES, Candidate

ENGINE_KEYS = ("epochs", "seed", "batch_size", "lr", "patience")


def _ground_truth(test: Any) -> tuple[np.ndarray, np.ndarray]:
    labels, masks = [], []
    for b in DataLoader(test, batch_size=32, collate_fn=collate_images):
        labels.append(b.label.numpy())
        masks.append(b.mask[:, 0].numpy() > 0.5)
    return np.concatenate(labels), np.concatenate(masks)


def _pick(records: list[dict[str, Any]], labels: set[str]) -> str:
    ok = [r for r in records if r["label"] in labels and r.get("synthetic_image_auroc") is not None]
    best = max(ok, key=lambda r: (r["synthetic_image_auroc"], r["synthetic_pixel_auroc"], -r["cost"]))
    return str(best["label"])


def run(spec: dict[str, Any]) -> dict[str, Any]:
    ds, root, cat, size = spec["dataset"], spec["root"], spec.get("category"), int(spec.get("size", 256))
    mode = spec.get("resize_mode", "resize")
    train = build_image_dataset(ds, root, cat, "train", size, mode)
    val = build_image_dataset(ds, root, cat, "val", size, mode) if ds in WITH_VAL_SPLIT else None
    test = build_image_dataset(ds, root, cat, "test", size, mode)
    y, gt = _ground_truth(test)
    extra = tuple(
        Candidate(label, s.get("model", "hfr"), {k: v for k, v in s.items() if k != "model"}, 10 + i)
        for i, (label, s) in enumerate(spec.get("extra", {}).items())
    )
    options = {k: spec[k] for k in ENGINE_KEYS if k in spec}
    det = Detector("auto", image_size=size, resize_mode=mode, progress=False, **options)
    t0 = time.time()
    det.fit_auto(train, val_data=val, candidates=CANDIDATES + extra, keep=True)
    fitted: dict[str, Detector] = det.__dict__["candidates_"]
    print(f"# {spec}: candidates trained in {time.time() - t0:.0f}s", flush=True)
    assert det.selection_ is not None
    records = det.selection_["candidates"]
    for r in records:
        if r["label"] in fitted:
            scores, maps = fitted[r["label"]].score_and_map(test)
            m = evaluate(y, scores, masks=gt, maps=maps, has_masks=True)
            r["real"] = {k: float(m[k]) for k in ("image_auroc", "pixel_auroc", "pro")}
        print(json.dumps(r), flush=True)
    default = {c.label for c in CANDIDATES}
    pick = _pick(records, default)
    real = {r["label"]: r["real"] for r in records if "real" in r}
    best_image = max(real[k]["image_auroc"] for k in real if k in default)
    best_pixel = max(real[k]["pixel_auroc"] for k in real if k in default)
    summary = {
        "pick": pick,
        "pick_real": real[pick],
        "regret_image": best_image - real[pick]["image_auroc"],
        "regret_pixel": best_pixel - real[pick]["pixel_auroc"],
        "seconds": time.time() - t0,
    }
    print(json.dumps(summary), flush=True)
    result = {"spec": spec, "selection": det.selection_, "summary": summary}
    if spec.get("out"):
        Path(spec["out"]).parent.mkdir(parents=True, exist_ok=True)
        Path(spec["out"]).write_text(json.dumps(result, indent=1))
    return result


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", type=json.loads, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    spec = parser().parse_args().spec
    torch.set_num_threads(int(spec.get("threads", 1)))
    run(spec)
