"""BENCHMARKS §18.2.1: CPU milliseconds per image of ``reconad predict`` with parts of its
work switched off, in one process (CPU time: what a loaded machine does not distort).

    taskset -c 1 env OMP_NUM_THREADS=1 python benchmarks/predict_parts.py RUN IMAGE_DIR --engine onnx

Modes: ``full`` (as shipped), ``no-encode`` (overlays blended but not PNG-encoded),
``no-overlay`` (no overlay at all: ``predict --overlays none``). Each runs once to warm up,
then once measured.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path


def _measure(run: Path, images: Path, engine: str, tmp: Path, overlays: str = "all") -> float:
    from reconad.cli import main

    n = sum(1 for _ in images.glob("*.png"))
    args = ["predict", str(run), str(images), "--engine", engine, "--overlays", overlays, "--quiet", "--out"]
    main([*args, str(tmp / "warm")])
    t0 = time.process_time()
    main([*args, str(tmp / "measured")])
    return (time.process_time() - t0) / n * 1e3


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("images", type=Path, help="a folder of PNG images")
    ap.add_argument("--engine", default="onnx")
    ap.add_argument("--mode", choices=("full", "no-encode", "no-overlay"), default="full")
    return ap


def main() -> None:
    args = parser().parse_args()
    if args.mode == "no-encode":
        import reconad.visualize as visualize

        visualize.encode_rgb_png = lambda row: b""  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as name:
        overlays = "none" if args.mode == "no-overlay" else "all"  # predict's own --overlays none
        ms = _measure(args.run, args.images, args.engine, Path(name), overlays)
        shutil.rmtree(name, ignore_errors=True)
    print(f"{args.mode}: {ms:.1f} CPU ms per image")


if __name__ == "__main__":
    main()
