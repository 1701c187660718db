"""BENCHMARKS §18 (one inference pipeline): ``reconad predict`` of N images against the
engine's own batch time, ``import reconad`` / ``reconad --help``, and a cold predict.

    python benchmarks/inference_pipeline.py RUN IMAGE_DIR --n 1000 --engine onnx --out runs/bench-pipeline

* engine: the run's pipeline (``reconad.inference.open_run``) on the N images already
  decoded and resized, in batches of the pipeline's batch size: the engine alone;
* predict: the real ``reconad predict RUN DIR --out OUT --engine ENGINE --quiet`` over the
  same N images as PNG files (decode, resize, score, p-value, ``scores.csv``, the overlay
  PNGs ``--overlays`` asks for: all, flagged or none), whole command, and marginal (minus a run over 8 images: start-up);
  ``--rounds`` times the engine and then predict that many times, and the ratios are the
  medians over the rounds;
* ``python -c "import reconad"`` and ``python -m reconad --help``, and a cold predict of
  one image (whether it imported torch), ``repeats`` processes each, median wall time.

With ``--engines-only torch,onnx,openvino``: only the engine-alone time of each, and each
engine's largest score and map difference from PyTorch's on the source images, relative to
PyTorch's range (the float engines' parity through the one pipeline).

Run it under ``taskset`` to pin every process to the same cores.  Beside wall seconds it
reports CPU seconds (user + system, all threads) and their ratios, which a loaded machine
does not distort as it does wall time.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def _wall(cmd: list[str]) -> float:
    return _timed(cmd)[0]


def _timed(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds: user + system of the command and its threads). CPU time
    counts the work done whatever else loads the machine, where wall time does not."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, timeout=3600)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def _engine_seconds(run: Path, source: list[Path], n: int, engine: str) -> dict[str, Any]:
    """The engine alone: ``n`` images (``source`` cycled) decoded once, scored in batches."""
    from reconad.inference import open_run

    pipe = open_run(run, engine)
    arrays = [pipe.spec.load_array(f) for f in source]
    images = [arrays[i % len(arrays)] for i in range(n)]
    pipe.score_batch(np.stack(images[: pipe.batch_size]))  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(images), pipe.batch_size):
        pipe.score_batch(np.stack(images[start : start + pipe.batch_size]))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "engine": pipe.engine,
        "batch_size": pipe.batch_size,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "fingerprint": pipe.fingerprint,
    }


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    span = max(float(np.ptp(a)), float(np.abs(a).max()), 1e-12)
    return float(np.abs(a - b).max()) / span


def _engines_only(run: Path, source: list[Path], n: int, engines: list[str]) -> dict[str, Any]:
    """Engine-alone seconds of each engine, and its parity with PyTorch on ``source``."""
    from reconad.inference import open_run

    reference = open_run(run, "torch")
    x = np.stack([reference.spec.load_array(f) for f in source])
    s_t, m_t = reference.score_batch(x)
    out: dict[str, Any] = {}
    for engine in engines:
        pipe = reference if engine == "torch" else open_run(run, engine)
        s, m = pipe.score_batch(x)
        out[engine] = {
            **_engine_seconds(run, source, n, engine),
            "score_gap_of_range": _gap(s_t, s),
            "map_gap_of_range": _gap(np.asarray(m_t), np.asarray(m)),
            "same_verdicts": bool((pipe.labels(s) == reference.labels(s_t)).all()),
        }
    return out


def _predict(run: Path, files: list[Path], engine: str, tmp: Path, overlays: str = "all") -> dict[str, Any]:
    folder = files[0].parent
    small = tmp / "small"
    small.mkdir()
    for f in files[:8]:
        shutil.copyfile(f, small / f.name)
    base = [sys.executable, "-m", "reconad", "predict", str(run)]
    tail = ["--engine", engine, "--overlays", overlays, "--quiet"]
    _wall([*base, str(small), "--out", str(tmp / "warm"), *tail])  # file cache, lazy imports
    s8, c8 = _timed([*base, str(small), "--out", str(tmp / "out8"), *tail])
    sn, cn = _timed([*base, str(folder), "--out", str(tmp / "outn"), *tail])
    return {
        "seconds_whole_command": sn,
        "seconds_8_images": s8,
        "seconds_marginal": sn - s8,
        "cpu_seconds_whole_command": cn,
        "cpu_seconds_marginal": cn - c8,
    }


def _round(args: argparse.Namespace, source: list[Path], files: list[Path], tmp: Path) -> dict[str, Any]:
    """The engine alone, then predict, back to back: one round (rounds alternate the two, so
    a machine whose speed drifts slows both alike)."""
    tmp.mkdir()
    engine = _engine_seconds(args.run, source, args.n, args.engine)
    predict = _predict(args.run, files, args.engine, tmp, args.overlays)
    scale = args.n / (args.n - 8)
    return {
        "engine_alone": engine,
        "predict": predict,
        "predict_over_engine": predict["seconds_whole_command"] / engine["seconds"],
        "marginal_predict_over_engine": predict["seconds_marginal"] * scale / engine["seconds"],
        "cpu_predict_over_engine": predict["cpu_seconds_whole_command"] / engine["cpu_seconds"],
        "cpu_marginal_predict_over_engine": predict["cpu_seconds_marginal"] * scale / engine["cpu_seconds"],
    }


def _median_wall(cmd: list[str], repeats: int) -> float:
    return statistics.median(_wall(cmd) for _ in range(repeats))


def _cold(run: Path, image: Path, engine: str, tmp: Path, repeats: int) -> dict[str, Any]:
    code = (
        "import sys; from reconad.cli import main; "
        f"rc = main(['predict', {str(run)!r}, {str(image)!r}, '--out', {str(tmp / 'cold')!r}, "
        f"'--engine', {engine!r}, '--quiet']); print(rc, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    cmd = [sys.executable, "-m", "reconad", "predict", str(run), str(image), "--out", str(tmp / "cold")]
    return {
        "seconds": _median_wall([*cmd, "--engine", engine, "--quiet"], repeats),
        "imports_torch": done.stdout.split()[-1] == "True",
    }


def _startup(run: Path, image: Path, engine: str, tmp: Path, repeats: int) -> dict[str, Any]:
    return {
        "import_reconad_s": _median_wall([sys.executable, "-c", "import reconad"], repeats),
        "reconad_help_s": _median_wall([sys.executable, "-m", "reconad", "--help"], repeats),
        "cold_predict": _cold(run, image, engine, tmp, repeats),
    }


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("images", type=Path, help="a folder of PNG images (cycled up to --n)")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--engine", default="onnx")
    ap.add_argument("--repeats", type=int, default=5, help="processes per start-up figure (median)")
    ap.add_argument("--rounds", type=int, default=1, help="engine-then-predict rounds (the ratios are medians)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--overlays", default="all", choices=("all", "flagged", "none"), help="predict's --overlays")
    ap.add_argument("--engines-only", default=None, help="comma-separated engines: engine times and parity only")
    ap.add_argument("--startup-only", action="store_true", help="import, --help and cold predict only")
    return ap


def main() -> None:
    args = parser().parse_args()
    source = sorted(args.images.glob("*.png"))
    if args.startup_only:  # runs on any tree (PYTHONPATH): no reconad.inference here
        with tempfile.TemporaryDirectory() as name:
            result = _startup(args.run, source[0], args.engine, Path(name), args.repeats)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "startup.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return
    if args.engines_only:
        result = _engines_only(args.run, source, args.n, args.engines_only.split(","))
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "engines.json").write_text(json.dumps(result, indent=2))
        print(json.dumps(result, indent=2))
        return
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        (tmp / "images").mkdir()
        files = []
        for i in range(args.n):
            files.append(tmp / "images" / f"{i:05d}.png")
            shutil.copyfile(source[i % len(source)], files[-1])
        result: dict[str, Any] = {"n_images": args.n, "image_source": str(args.images), "overlays": args.overlays}
        rounds = [_round(args, source, files, tmp / f"round{r}") for r in range(args.rounds)]
        result["rounds"] = rounds
        for key in rounds[0]:
            if key.endswith("over_engine"):
                result[key] = statistics.median(r[key] for r in rounds)
        result["engine_alone"], result["predict"] = rounds[-1]["engine_alone"], rounds[-1]["predict"]
        result.update(_startup(args.run, files[0], args.engine, tmp, args.repeats))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "result.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
