"""``reconad predict`` on ONNX Runtime without importing PyTorch: the cold-start path.

Loading PyTorch takes longer than scoring a handful of images, so where a run already
has a valid ONNX export, ``predict`` (engine ``auto``, ``onnx`` or ``onnx-int8``) reads
the run's JSON, checks the model file and the export against their SHA-256 (the same
checks as the full path: ``reconad.serialization.read_model_config``,
``reconad.engines.check_export``), decodes and resizes images with numpy
(``reconad.imaging.load_array``, held to ``load_image``'s pixels by a test) and streams
them through ``reconad.streaming`` as always.  Anything else (no export yet, a tiled
model, another tiling asked for, torchrun, a model saved before calibration records)
takes the full path: ``quick_predict`` then returns None before doing anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconad.engines import EXPORT_FILE, OnnxDetector, check_export, int8_export, machine_threads
from reconad.streaming import StreamResult

__all__ = ["ExportedRun", "open_exported", "quick_predict"]

#: images per ONNX Runtime call (``Detector._batch_size`` on a CPU; scores do not depend on it)
CPU_BATCH = 4


@dataclass
class ExportedRun:
    """What ``reconad.streaming`` reads of a detector, from a run's JSON alone."""

    model_name: str
    settings: dict[str, Any]
    threshold_: float | None
    calibration_: Any
    export: Path
    tiling: None = None
    tiled: bool = False


def open_exported(run: Path, engine: str) -> ExportedRun | None:
    """The run as its export sees it, or None where the quick path does not apply."""
    from reconad.calibration import Calibration
    from reconad.serialization import read_model_config

    if engine not in ("auto", "onnx", "onnx-int8") or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    if not (run / EXPORT_FILE).exists() or not (run / "model").is_dir():
        return None
    cfg = read_model_config(run / "model")  # checks the model file against its checksum
    sha = str(cfg["weights_sha256"])
    meta = check_export(run / EXPORT_FILE, run, sha)  # stale, foreign or changed: refused
    if meta.get("preprocessing", {}).get("tiling") is not None:
        return None
    if cfg.get("threshold") is not None and not cfg.get("calibration"):
        return None  # saved before calibration records: the full path rebuilds one
    export = int8_export(run, sha) if engine == "onnx-int8" else run / EXPORT_FILE
    calibration = Calibration.from_dict(cfg["calibration"]) if cfg.get("calibration") else None
    settings = dict(cfg.get("detector") or {})
    if "image_size" not in settings or "resize_mode" not in settings:
        return None
    return ExportedRun(str(cfg.get("model")), settings, cfg.get("threshold"), calibration, export)


def quick_predict(
    run: str | os.PathLike,
    paths: list[str],
    out: str | os.PathLike,
    engine: str = "auto",
    resume: bool = False,
    strict: bool = False,
    progress: bool = True,
) -> StreamResult | None:
    """``reconad.runs.predict_run`` without PyTorch, or None where it does not apply."""
    from reconad.imaging import expand_paths, load_array
    from reconad.streaming import stream_predict

    exported = open_exported(Path(run), engine)
    if exported is None:
        return None
    session = OnnxDetector(exported.export, threads=machine_threads())
    files = expand_paths(paths)
    return stream_predict(
        exported, files, Path(out), session, resume=resume, strict=strict, batch_size=CPU_BATCH,
        show_progress=progress, loader=load_array,
    )  # fmt: skip
