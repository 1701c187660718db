"""Tiled scoring against whole-image resizing on large generated textures with small defects.

Usage (from the project root, in the project's venv):

    python benchmarks/tiling_large.py '{"size": 2048, "train": 10, "test": 10, "out": "runs/tiling-2048.json"}'

Each image is a ``size`` x ``size`` grey texture (two scales of smoothed noise plus a
fine grain, a new random stream per image); a defective test image holds one soft disc
6-12 px across, brighter or darker than its surroundings by 0.3 on the [0, 1] scale
(the mask is where the blending weight exceeds 0.5).  The same training images train
two HFR detectors with default settings: one on whole images resized to 256 px, one on
256-px tiles at native resolution (``tile_size=256, tile_overlap=32``).  Both score the
same test images; the resized model's maps are brought back to full size for the pixel
AUROC.  The JSON holds every figure, the training seconds and images/s of scoring.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from reconad.detector import Detector
from reconad.metrics import image_auroc, pixel_auroc


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A stationary grey texture in [0, 1]: coarse and medium smoothed noise plus grain."""
    coarse = ndimage.gaussian_filter(rng.normal(size=(size, size)), 24)
    medium = ndimage.gaussian_filter(rng.normal(size=(size, size)), 3)
    grain = rng.normal(size=(size, size))
    img = 0.5 + 0.08 * coarse / coarse.std() + 0.06 * medium / medium.std() + 0.03 * grain
    return np.clip(img, 0.0, 1.0)


def add_defect(img: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One soft disc 6-12 px across, +-0.3; (image, mask)."""
    size = img.shape[0]
    radius = rng.uniform(3.0, 6.0)
    cy, cx = rng.uniform(radius + 2, size - radius - 2, size=2)
    yy, xx = np.ogrid[:size, :size]
    dist = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
    alpha = np.clip(radius + 0.5 - dist, 0.0, 1.0)
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return np.clip(img + sign * 0.3 * alpha, 0.0, 1.0), alpha > 0.5


def make_set(seed: int, size: int, n_train: int, n_test: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    train = np.stack([texture(rng, size) for _ in range(n_train)]).astype(np.float32)
    test, masks = [], []
    for i in range(2 * n_test):
        img = texture(rng, size)
        mask = np.zeros_like(img, dtype=bool)
        if i >= n_test:
            img, mask = add_defect(img, rng)
        test.append(img.astype(np.float32))
        masks.append(mask)
    labels = np.array([0] * n_test + [1] * n_test)
    return {"train": train, "test": np.stack(test), "masks": np.stack(masks), "labels": labels}


def evaluate(name: str, det: Detector, data: dict[str, Any], size: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    scores, maps = det.score_and_map(data["test"])
    seconds = time.perf_counter() - t0
    if maps.shape[-1] != size:
        maps = F.interpolate(torch.from_numpy(maps)[:, None], size=(size, size), mode="bilinear")[:, 0].numpy()
    row = {
        "setting": name,
        "image_auroc": image_auroc(data["labels"], scores),
        "pixel_auroc": pixel_auroc(data["masks"], maps),
        "images_per_s": len(scores) / seconds,
    }
    print(json.dumps(row), flush=True)
    return row


def main(opts: dict[str, Any]) -> None:
    size, n_train, n_test = int(opts.get("size", 2048)), int(opts.get("train", 10)), int(opts.get("test", 10))
    torch.set_num_threads(int(opts.get("threads", 1)))
    data = make_set(int(opts.get("seed", 0)), size, n_train, n_test)
    rows = []
    settings = {"resized to 256": {"image_size": 256}, "tiles 256, overlap 32": {"tile_size": 256, "tile_overlap": 32}}
    for name, extra in settings.items():
        t0 = time.perf_counter()
        det = Detector("hfr", seed=0, progress=False, **extra).fit(data["train"])
        row = evaluate(name, det, data, size)
        row["train_seconds"] = time.perf_counter() - t0
        rows.append(row)
    out = Path(opts.get("out", "runs/tiling-large.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"options": opts, "rows": rows}, indent=2))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", nargs="?", type=json.loads, default={}, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    main(parser().parse_args().spec)
