"""The frames of a video set in the UCSD layout treated as still images: an image model
trained on the training frames, each test frame scored alone, frame AUROC.

Usage (from the project root, in the project's venv):

    python benchmarks/frames_as_images.py --root ../shared/data/ucsd-ped2 --model hfr \
        --every 4 --set '{}' --out runs/ped2-frames.json

Every ``--every``-th training frame (normal only) is a training image of ``--model`` with
the options of ``--set`` (JSON; the Detector's defaults otherwise, e.g. 256 px squashed);
every test frame is scored, in order, as an image.  Prints (and appends to ``--out``) one
JSON line: micro frame AUROC over all test frames (the official labels), the same after
min-max per test clip, pixel AUROC against the masks at the model's map size, fit and
scoring seconds.  No temporal information is used.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from reconad.data.video import frame_files, load_ucsd_split
from reconad.detector import Detector
from reconad.metrics import image_auroc, pixel_auroc
from reconad.protocols.results import emit_row


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True)
    p.add_argument("--model", default="hfr")
    p.add_argument("--set", default="{}", help="Detector options (JSON)")
    p.add_argument("--every", type=int, default=4, help="every n-th training frame trains")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    return p


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    options = json.loads(a.set)
    root = Path(a.root)
    train = [f for d in sorted((root / "training" / "frames").iterdir()) if d.is_dir() for f in frame_files(d)]
    train = train[:: a.every]
    t0 = time.perf_counter()
    det = Detector(a.model, seed=a.seed, progress=False, **options)
    det.fit([str(f) for f in train])
    fit_s = time.perf_counter() - t0
    first = frame_files(sorted(d for d in (root / "testing" / "frames").iterdir() if d.is_dir())[0])[0]
    with Image.open(first) as im:
        size = (im.height, im.width)  # masks and maps at the frames' own size
    test = load_ucsd_split(root, "testing", size, 1)
    t1 = time.perf_counter()
    scores, maps = [], []
    for clip in test:
        s, m = det.score_and_map(list(clip.paths))
        scores.append(np.asarray(s, dtype=np.float64))
        maps.append(F.interpolate(torch.from_numpy(m)[:, None], size=size, mode="bilinear")[:, 0].numpy())
    score_s = time.perf_counter() - t1
    y = np.concatenate([c.labels for c in test if c.labels is not None])
    per_clip = [(s - s.min()) / max(s.max() - s.min(), 1e-12) for s in scores]
    masks = np.concatenate([c.masks for c in test if c.masks is not None])
    row = {
        "model": a.model,
        "options": options,
        "every": a.every,
        "train_frames": len(train),
        "frame_auroc_micro": image_auroc(y, np.concatenate(scores)),
        "frame_auroc_clip_norm": image_auroc(y, np.concatenate(per_clip)),
        "pixel_auroc": pixel_auroc(masks, np.concatenate(maps)),
        "fit_seconds": fit_s,
        "score_seconds": score_s,
    }
    emit_row(row, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
