"""A detector trained and scored on tiles of a data set's images at their own resolution,
where the images differ in size (``reconad test`` stacks maps of one size and refuses such
a test split).

Usage (from the project root, in the project's venv):

    python benchmarks/tiled_native.py --dataset magnetic-tile --root ../shared/data/magnetic-tile \
        --set '{"tile_size": 128, "epochs": 10}'

The Detector (``--model``, default hfr, with the options of ``--set`` as JSON) is fitted on
the training split read at native size; every test image is scored alone, at its own size.
Prints one JSON line: image AUROC, pixel AUROC over every pixel of every test image
(flattened, since the sizes differ), fit and total seconds.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from torch.utils.data import Subset

from reconad.data import build_image_dataset
from reconad.detector import Detector
from reconad.metrics import image_auroc, pixel_auroc
from reconad.protocols.results import emit_row


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--category", default=None)
    p.add_argument("--model", default="hfr")
    p.add_argument("--set", default='{"tile_size": 128}', help="Detector options (JSON)")
    p.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    options = json.loads(a.set)
    train = build_image_dataset(a.dataset, a.root, a.category, "train", None, "resize")
    test = build_image_dataset(a.dataset, a.root, a.category, "test", None, "resize")
    t0 = time.perf_counter()
    det = Detector(a.model, seed=a.seed, progress=False, **options)
    det.fit(train)
    fit_s = time.perf_counter() - t0
    labels, scores, masks, maps = [], [], [], []
    for i in range(len(test)):
        item = test[i]
        s, m = det.score_and_map(Subset(test, [i]))
        labels.append(int(item.label))
        scores.append(float(s[0]))
        masks.append((item.mask[0].numpy() > 0.5).reshape(-1))
        maps.append(m[0].reshape(-1))
    row = {
        "dataset": a.dataset,
        "model": a.model,
        "options": options,
        "seed": a.seed,
        "image_auroc": image_auroc(np.array(labels), np.array(scores)),
        "pixel_auroc": pixel_auroc(np.concatenate(masks)[None], np.concatenate(maps)[None]),
        "fit_seconds": fit_s,
        "total_seconds": time.perf_counter() - t0,
        "test_images": len(labels),
    }
    emit_row(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
