"""motion_knn's settings chosen on the training clips alone: synthetic moving objects.

Usage (from the project root, in the project's venv):

    python benchmarks/motion_knn_weights.py --root ../shared/data/ucsd-ped2 \
        --weights 0,0.25,0.5,1,2 --out runs/motion-weights.json

A seeded quarter of the training clips is held out.  The model's bank comes from the
other clips; into each held-out clip a patch cut from another training frame is pasted,
moving in a straight line at ``--speed`` pixels per frame through a third of the clip
(the anomalous frames).  Each setting (``motion_weight`` from ``--weights``, with the
options given as JSON in ``--set``) scores those clips as streams, and the frame AUROC
over all their frames is printed (one JSON line per setting) and appended to ``--out``.
No test clip is read.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from reconad.data.video import Clip, ClipWindows, frames_tensor, load_ucsd_split
from reconad.metrics import image_auroc
from reconad.models import build_model
from reconad.protocols.results import emit_row


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="a clip set in the UCSD layout (only training/ is read)")
    p.add_argument("--frame-size", default="256,384", help="H,W")
    p.add_argument("--weights", default="0,0.25,0.5,1,2", help="motion_weight values, comma-separated")
    p.add_argument("--set", default="{}", help="other motion_knn options (JSON)")
    p.add_argument("--hold-out", type=float, default=0.25, help="share of the training clips held out")
    p.add_argument("--speed", type=float, default=6.0, help="pixels per frame of the pasted object")
    p.add_argument("--patch", default="40,24", help="the pasted object's H,W in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="JSON lines appended here")
    return p


def paste_moving_patch(
    clip: Clip, donor: np.ndarray, rng: np.random.Generator, speed: float, patch: tuple[int, int]
) -> Clip:
    """A copy of ``clip`` with a patch of ``donor`` (H, W, C) moving through a third of it;
    its labels mark the frames the patch is in."""
    frames = np.array(clip.frames, copy=True)
    t_len, h, w, _ = frames.shape
    ph, pw = patch
    span = max(2, t_len // 3)
    t0 = int(rng.integers(0, t_len - span))
    sy, sx = int(rng.integers(0, donor.shape[0] - ph)), int(rng.integers(0, donor.shape[1] - pw))
    piece = donor[sy : sy + ph, sx : sx + pw]
    angle = rng.uniform(0, 2 * np.pi)
    vy, vx = speed * np.sin(angle), speed * np.cos(angle)
    y, x = rng.uniform(0, h - ph), rng.uniform(0, w - pw)
    labels = np.zeros(t_len, np.int64)
    for t in range(t0, t0 + span):
        yi, xi = int(round(y)), int(round(x))
        frames[t, yi : yi + ph, xi : xi + pw] = piece
        labels[t] = 1
        if not 0 <= y + vy <= h - ph:
            vy = -vy
        if not 0 <= x + vx <= w - pw:
            vx = -vx
        y, x = y + vy, x + vx
    return Clip(name=f"{clip.name}-synthetic", frames=frames, paths=list(clip.paths), labels=labels)


def main(argv: list[str] | None = None) -> int:
    a = parser().parse_args(argv)
    size = tuple(int(v) for v in a.frame_size.split(","))
    patch = tuple(int(v) for v in a.patch.split(","))
    options: dict[str, Any] = json.loads(a.set)
    clips = load_ucsd_split(a.root, "training", (size[0], size[1]), 1)
    rng = np.random.default_rng(a.seed)
    order = rng.permutation(len(clips))
    n_out = max(1, int(round(a.hold_out * len(clips))))
    held, kept = [clips[i] for i in order[:n_out]], [clips[i] for i in order[n_out:]]
    synthetic = []
    for clip in held:
        donor = kept[int(rng.integers(len(kept)))]
        synthetic.append(paste_moving_patch(clip, donor.frames[int(rng.integers(len(donor)))], rng, a.speed, patch))
    device = torch.device("cpu")
    model = build_model("motion_knn", **options)
    t0 = time.perf_counter()
    cells = model.training_cells(ClipWindows(kept, 8, 4), device)
    print(f"# {len(kept)} clips kept, {len(held)} held out; cells in {time.perf_counter() - t0:.0f}s", flush=True)
    y = np.concatenate([c.labels for c in synthetic if c.labels is not None])
    for w in (float(v) for v in a.weights.split(",")):
        model.config.motion_weight = w
        model.on_fit_end(cells, None, device)
        scores = []
        for clip in synthetic:
            frames = frames_tensor(clip.frames)
            scores.append(model.score_sequence(frames)[0].numpy())
        row = {"motion_weight": w, "options": options, "synthetic_frame_auroc": image_auroc(y, np.concatenate(scores))}
        row.update(speed=a.speed, patch=list(patch), hold_out=len(held), seed=a.seed)
        emit_row(row, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
