"""Engine parity through the user-level interfaces: the Python facade, ``reconad export`` /
``reconad predict`` in-process, and the ONNX file a user runs with ONNX Runtime.

Each registered model is fitted once (``helpers.minimal_models``), saved through
``Detector.save`` as a run folder, and a fixed set of PNGs is written at its input size;
the facade's PyTorch scores and maps are the reference every other engine is measured
against (max |difference| relative to the reference's range over the set).
Shared by ``tests/test_engine_parity.py`` and ``benchmarks/engine_parity.py``.
"""

from __future__ import annotations

import contextlib
import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from helpers.minimal_models import minimal_detector, table_models
from reconad import Detector
from reconad.models import MODELS, model_entry

#: scores.csv keeps six decimals: a score read back from it is within this of the engine's own
CSV_STEP = 5e-7


def image_models() -> list[str]:
    return [n for n in MODELS if "image" in model_entry(n)[0].input_kinds]


def parity_images(size: int, n: int = 8) -> np.ndarray:
    """(n, size, size, 3) uint8: noise like the training toy, bars, a black and a white square."""
    rng = np.random.default_rng(7)
    out = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    out[4, size // 3 : size // 3 + 2] = 255
    out[5, :, size // 2 : size // 2 + 2] = 0
    out[6], out[7] = 0, 255
    return out


@dataclass
class FittedRun:
    """One model fitted on its toy and saved as ``run/model``, with the PNGs it is scored on."""

    name: str
    det: Detector
    run: Path
    files: list[Path]
    images: np.ndarray  # (N, H, W, 3) float32 in [0, 1]: exactly what the PNGs decode to
    exported: bool = False
    reference: dict[str, np.ndarray] = field(default_factory=dict)


def fit_run(name: str, root: Path) -> FittedRun:
    det = minimal_detector(name)
    run = root / name
    det.save(run / "model")
    pixels = parity_images(det.input_size)
    files = []
    for i, array in enumerate(pixels):
        path = root / f"{name}-{i}.png"
        Image.fromarray(array).save(path)
        files.append(path)
    images = pixels.astype(np.float32) / 255.0
    fr = FittedRun(name, det, run, files, images)
    fr.reference = {"scores": det.decision_function(images), "maps": det.anomaly_map(images)}
    return fr


def cli(args: list[str]) -> tuple[int, str]:
    """``reconad ARGS`` in-process: (exit code, what it wrote to stderr)."""
    from reconad.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(args)
    return code, err.getvalue()


def export(fr: FittedRun) -> tuple[int, str]:
    code, err = cli(["export", str(fr.run)])
    fr.exported = code == 0
    return code, err


def predict(fr: FittedRun, engine: str, out: Path) -> tuple[int, list[dict[str, str]] | str]:
    """``reconad predict`` of the run's PNGs: (0, scores.csv rows in file order) or (code, stderr)."""
    code, err = cli(["predict", str(fr.run), *map(str, fr.files), "--out", str(out), "--engine", engine, "--quiet"])
    if code != 0:
        return code, err
    with open(out / "scores.csv", newline="") as fh:
        rows = {r["path"]: r for r in csv.DictReader(fh)}
    return 0, [rows[str(p)] for p in fr.files]


def onnx_runtime(path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The exported file scored as a user would: ONNX Runtime on (N, 3, H, W) float32."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32)
    scores, maps = session.run(["scores", "maps"], {"images": x})
    return np.asarray(scores), np.asarray(maps)


def relative_gap(got: np.ndarray, want: np.ndarray) -> float:
    """max |got - want| over the range of ``want`` (its largest magnitude where it is flat)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    spread = float(np.ptp(want)) or float(np.abs(want).max()) or 1.0
    return float(np.abs(got - want).max()) / spread


def tolerance(want: np.ndarray, extra: float = 0.0) -> float:
    """The parity bound: 1e-5 of ``want``'s range, plus a few float32 steps of its magnitude (a
    barely-trained model can score nearly flat, where the range is below float32's resolution)."""
    want = np.asarray(want, np.float64)
    return 1e-5 * float(np.ptp(want)) + 4 * float(np.finfo(np.float32).eps) * float(np.abs(want).max()) + extra


def verdicts(scores: np.ndarray, threshold: float) -> np.ndarray:
    return np.asarray(scores) > threshold


def parity_row(fr: FittedRun, engine: str, scores: Any, maps: Any, flags: Any) -> dict[str, Any]:
    """One line of the parity table: the gaps to the facade's PyTorch scores and maps, verdict agreement."""
    ref = fr.reference
    want = verdicts(ref["scores"], float(fr.det.threshold_))
    extra = CSV_STEP if maps is None else 0.0  # scores read back from scores.csv
    within = [np.abs(np.asarray(scores) - ref["scores"]).max() <= tolerance(ref["scores"], extra)]
    if maps is not None:
        within.append(np.abs(np.asarray(maps) - ref["maps"]).max() <= tolerance(ref["maps"]))
    return {
        "model": fr.name,
        "engine": engine,
        "score_gap": relative_gap(scores, ref["scores"]),
        "map_gap": None if maps is None else relative_gap(maps, ref["maps"]),
        "score_range": float(np.ptp(ref["scores"])),
        "score_scale": float(np.abs(ref["scores"]).max()),
        "map_range": float(np.ptp(ref["maps"])),
        "within_bound": bool(all(within)),
        "verdicts_agree": None if flags is None else float(np.mean(np.asarray(flags) == want)),
    }


def measure(fr: FittedRun, out: Path) -> list[dict[str, Any]]:
    """Every engine ``fr``'s model supports, against the facade (the benchmark's table rows)."""
    rows = []
    code, got = predict(fr, "torch", out / f"{fr.name}-torch")
    if code == 0:
        scores = np.array([float(r["score"]) for r in got])
        rows.append(parity_row(fr, "torch (reconad predict)", scores, None, [r["label"] == "1" for r in got]))
    if export(fr)[0] == 0:
        scores, maps = onnx_runtime(fr.run / "export" / "model.onnx", fr.images)
        code, got = predict(fr, "onnx", out / f"{fr.name}-onnx")
        flags = [r["label"] == "1" for r in got] if code == 0 else None
        rows.append(parity_row(fr, "onnx", scores, maps, flags))
    else:
        rows.append({"model": fr.name, "engine": "onnx", "refused": True})
    return rows


def table_refusals(root: Path) -> dict[str, tuple[int, str]]:
    """``reconad export`` of each model's table variant: (exit code, stderr)."""
    out = {}
    for name in table_models():
        det = minimal_detector(name, rows=True)
        det.save(root / f"{name}-rows" / "model")
        out[name] = cli(["export", str(root / f"{name}-rows")])
    return out
