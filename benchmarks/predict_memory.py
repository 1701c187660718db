"""Peak memory and speed of streaming ``reconad predict`` against the number of images.

Usage (from the project root, in the project's venv):

    python benchmarks/predict_memory.py '{"counts": [2000, 20000], "size": 64, "work": "/tmp/predict-memory"}'

Writes ``counts`` random grey PNGs (``size`` px) under ``work``, trains a small AE run
there (image_size ``size``, 2 epochs; the model does not matter for the memory
question, only that its maps are written and dropped), then runs ``reconad predict``
as a child process on the first N images for each N, with one process and with
``torchrun --nproc-per-node 2``, and reports each run's peak resident memory (the
largest of the processes, from ``/usr/bin/time -v``), seconds and images/s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reconad import Detector


def write_images(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        path = folder / f"{i:06d}.png"
        if not path.exists():
            Image.fromarray((100 + 40 * rng.random((size, size))).astype(np.uint8)).save(path)


def peak_rss_mb(stderr: str) -> float:
    """The largest 'Maximum resident set size' reported (torchrun: its own, not its children)."""
    found = [int(v) for v in re.findall(r"Maximum resident set size \(kbytes\): (\d+)", stderr)]
    return max(found) / 1024.0 if found else float("nan")


def timed(cmd: list[str]) -> tuple[float, float]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return time.perf_counter() - t0, peak_rss_mb(done.stderr)


def main(opts: dict[str, Any]) -> None:
    counts, size = [int(c) for c in opts.get("counts", [2000, 20000])], int(opts.get("size", 64))
    work = Path(opts.get("work", "/tmp/predict-memory"))
    images = work / "images"
    write_images(images, max(counts), size)
    run = work / "run"
    if not (run / "model").exists():
        rng = np.random.default_rng(1)
        train = (0.4 + 0.15 * rng.random((64, size, size))).astype(np.float32)
        Detector("ae", image_size=size, epochs=2, progress=False).fit(train).save(run / "model")
    rows = []
    for n in counts:
        lists = work / f"list-{n}"
        lists.mkdir(exist_ok=True)
        for f in sorted(images.iterdir())[:n]:
            link = lists / f.name
            if not link.exists():
                link.symlink_to(f)
        for procs in opts.get("procs", [1, 2]):
            out = work / f"out-{n}-{procs}"
            base = ["-m", "reconad", "predict", str(run), str(lists), "--out", str(out), "--quiet"]
            if procs == 1:
                cmd = [sys.executable, *base]
            else:
                cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs)]
                cmd += base
            seconds, rss = timed(cmd)
            row = {"images": n, "processes": procs, "seconds": seconds, "images_per_s": n / seconds, "peak_rss_mb": rss}
            print(json.dumps(row), flush=True)
            rows.append(row)
    Path(opts.get("out", work / "predict-memory.json")).write_text(json.dumps(rows, indent=2))


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", nargs="?", type=json.loads, default={}, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    main(parser().parse_args().spec)
