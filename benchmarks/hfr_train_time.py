"""Training time of one detector on the speed protocol's data (generated bricks), nothing else.

    python benchmarks/hfr_train_time.py '{"epochs": 30}' --n-train 300 --threads 2 --data /tmp/bricks300

The first argument holds the ``Detector`` options (model options and engine options, e.g.
``width``, ``epochs``, ``precision``); ``--model`` picks the model (default ``hfr``).  The
bricks are generated into ``--data`` once (256 px, ``--n-train`` images) and reused.  Prints
the machine's matrix-multiply rate, then one JSON line: the fit's wall seconds, the engine's
own seconds and the encoder pass (``prepare_seconds``), the epochs run and the held-out loss
per epoch.  ``reconad benchmark speed`` times the same fit and then every inference engine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from reconad.data import build_image_dataset
from reconad.data.textures import generate_textures
from reconad.detector import Detector
from reconad.protocols.measure import matmul_gflops


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("options", nargs="?", default="{}", help="Detector options as JSON")
    ap.add_argument("--model", default="hfr")
    ap.add_argument("--n-train", type=int, default=300)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", type=Path, required=True, help="folder for the generated bricks (made once)")
    return ap


def main() -> None:
    args = parser().parse_args()
    torch.set_num_threads(args.threads)
    print(f"matmul {matmul_gflops():.1f} GFLOP/s on {args.threads} thread(s)", flush=True)
    if not (args.data / "brick" / "train").exists():
        generate_textures(
            args.data,
            categories=("brick",),
            image_size=args.image_size,
            n_train=args.n_train,
            n_test_good=0,
            n_test_defect_per_type=0,
        )
    train = build_image_dataset("mvtec", str(args.data), category="brick", split="train", image_size=args.image_size)
    options = json.loads(args.options)
    det = Detector(args.model, image_size=args.image_size, progress=False, **options)
    t0 = time.perf_counter()
    det.fit(train)
    history = det.history_
    row = {
        "options": options,
        "fit_seconds": round(time.perf_counter() - t0, 1),
        "engine_seconds": round(history.seconds, 1),
        "prepare_seconds": round(history.prepare_seconds, 1),
        "epochs": history.epochs_run,
        "best_epoch": history.best_epoch,
        "val_loss": [round(v, 4) for v in history.val_loss],
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
