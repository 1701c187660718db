"""ALOCC on one MNIST-10k class, scored four ways by the same trained model.

Usage (from the project root, in the project's venv):

    python benchmarks/alocc_scores.py 0 '{}'

Trains ``alocc`` with the one-class benchmark's settings (28 px, seed 0) on the
training images of the class given, prints the logged losses (every 4th epoch), then
the test-set AUROC of 1 - D(R(x)) (the paper's score), 1 - D(x), the reconstruction
error ||x - R(x)||^2 and the ink (mean pixel value) of each image, with the means over
normal and anomalous images.  The second argument holds extra Detector options (JSON).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch

from reconad.data.class_datasets import load_one_class_set
from reconad.detector import Detector
from reconad.metrics import image_auroc


def main(normal_class: int, opts: dict) -> None:
    torch.set_num_threads(1)
    data = load_one_class_set("mnist-10k")
    x = data.train_x[data.train_y == normal_class]
    y = (data.test_y != normal_class).astype(int)
    t0 = time.time()
    det = Detector("alocc", image_size=28, seed=0, progress=False, **opts).fit(x)
    print(f"fit {time.time() - t0:.0f}s")
    assert det.history_ is not None
    for key, values in det.history_.logs.items():
        print(key, " ".join(f"{v:.3g}" for v in values[::4]))
    model, seen = det.model_, {}
    plain = model.score

    def variants(images: torch.Tensor):
        with torch.no_grad():
            rec = model.reconstructor(images)
            rows = {
                "1-D(R(x))": 1 - torch.sigmoid(model.discriminator(rec)[0]),
                "1-D(x)": 1 - torch.sigmoid(model.discriminator(images)[0]),
                "||x-R(x)||^2": (images - rec).pow(2).flatten(1).sum(1),
                "ink": images.flatten(1).mean(1),
            }
        for k, v in rows.items():
            seen.setdefault(k, []).append(v.reshape(len(images)).numpy())
        return plain(images)

    model.score = variants
    print("default", round(image_auroc(y, det.decision_function(data.test_x)), 4))
    for k, parts in seen.items():
        v = np.concatenate(parts)
        print(f"{k:13s} AUROC {image_auroc(y, v):.4f}  normal {v[y == 0].mean():.4g}  anomalous {v[y == 1].mean():.4g}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0, json.loads(sys.argv[2]) if len(sys.argv) > 2 else {})
