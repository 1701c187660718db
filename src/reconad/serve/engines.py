"""The models a server holds: a run directory loaded once, scored by ONNX Runtime or PyTorch.

ONNX Runtime is the default where the model exports: the export is written into the
run on first use (``RUN/export/model.onnx``) and recorded with the SHA-256 of the model
file it came from; an export that records other weights (stale) or whose file does not
match its own checksum (replaced) is refused, never silently used.  Loading goes
through ``Detector.load``, which refuses a model file that does not match its
checksum, and reads only safetensors and JSON (no pickle, no code from model files).
"""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from reconad.errors import ConfigError, ModelFileError
from reconad.serve.config import ServedRun

__all__ = ["Engine", "ServedModel", "load_served_model", "overlay_png"]

log = logging.getLogger("reconad.serve")


class Engine(Protocol):
    """Scores a pre-processed batch (N, 3, H, W) float32: (scores (N,), maps (N, H, W) or None)."""

    name: str

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


class OnnxEngine:
    def __init__(self, path: Path, threads: int, name: str = "onnx") -> None:
        from reconad.export import OnnxDetector

        self.name = name
        self.session = OnnxDetector(path, threads=threads)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.session(images)


class TorchEngine:
    name = "torch"

    def __init__(self, model: Any) -> None:
        self.model = model.cpu().eval()

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.inference_mode():
            out = self.model.score_images(torch.from_numpy(images))
        maps = None if out.maps is None else out.maps.float().numpy()
        return out.scores.float().numpy(), maps


@dataclass
class ServedModel:
    """One loaded run: the scoring engine and what answers about its scores need."""

    name: str
    run: Path
    engine: Engine
    image_size: int
    resize_mode: str
    threshold: float | None
    calibration: Any
    color_range: tuple[float, float]
    info: dict[str, Any] = field(default_factory=dict)
    #: (tile_size, overlap) of a model that scores by tiles (reconad.tiling), else None
    tiling: tuple[int, int] | None = None

    @property
    def decode_size(self) -> int | None:
        """The size uploads are decoded at: ``image_size``, or their own (None) when tiled."""
        return None if self.tiling else self.image_size

    @property
    def input_size(self) -> int:
        """The side of the squares the engine scores."""
        return self.tiling[0] if self.tiling else self.image_size

    @property
    def sha256(self) -> str:
        return str(self.info["model_sha256"])

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        if self.calibration is None:
            return np.full(len(scores), np.nan)
        return np.asarray(self.calibration.p_values(scores), dtype=np.float64)

    def verdict(self, score: float) -> str | None:
        """``anomalous`` above the threshold, ``normal`` at or below it (None: no threshold)."""
        if self.threshold is None:
            return None
        return "anomalous" if score > self.threshold else "normal"

    def warm_up(self, max_batch: int) -> None:
        """First forward passes allocate and pick kernels; do them before /readyz says ready."""
        for n in sorted({1, max_batch}):
            self.engine(np.zeros((n, 3, self.input_size, self.input_size), dtype=np.float32))


def _describe(run: Path, det: Any, sha: str, engine: str) -> dict[str, Any]:
    from reconad.data.spec import DataSpec
    from reconad.rundir import RUN_FILE

    data = None  # the run's data, as train_run recorded it
    if (run / RUN_FILE).exists():
        try:
            data = DataSpec(**json.loads((run / RUN_FILE).read_text())["data"]).describe()
        except (KeyError, TypeError, ValueError):
            data = None
    cal = det.calibration_
    return {
        "model": det.model_name,
        "image_size": int(det.settings["image_size"]),
        "resize_mode": str(det.settings["resize_mode"]),
        "tiling": det.tiling,
        "threshold": det.threshold_,
        "threshold_basis": None if cal is None else cal.basis,
        "expected_false_alarm_rate": None if cal is None else cal.expected_fpr,
        "calibration": None if cal is None else cal.describe(),
        "training_data": data,
        "model_sha256": sha,
        "engine": engine,
    }


def _engine_for(sr: ServedRun, det: Any, sha: str, engine: str, threads: int) -> Engine:
    """ONNX Runtime (float or int8) where the model exports and ``engine`` allows, PyTorch otherwise."""
    from reconad.engines import engine_export, resolve_engine

    used = resolve_engine(det, engine)
    if used == "torch" and engine == "auto":
        log.warning("%s: %s does not export; scoring with PyTorch", sr.name, det.model_name)
    if used != "torch":
        torch.set_num_threads(1)  # PyTorch only resizes uploads then; ONNX Runtime has the cores
        return OnnxEngine(engine_export(Path(sr.path), det, sha, used), threads, used)
    torch.set_num_threads(threads)
    return TorchEngine(det.model_)


def load_served_model(
    sr: ServedRun, engine: str = "auto", threads: int = 1, tiling: tuple[int | None, int | None] = (None, None)
) -> ServedModel:
    """Load a run for serving; ModelFileError naming the file when the model was tampered with."""
    from reconad.detector import Detector
    from reconad.runs import map_range
    from reconad.serialization import WEIGHTS, recorded_sha256

    run = Path(sr.path)
    if not run.is_dir():
        raise ModelFileError(f"no such run directory: {run}")
    from reconad.runs import retile

    det = Detector.load(run / "model", device="cpu")  # checks the weights against their SHA-256
    size_before = det.input_size
    retile(det, *tiling)  # another tiling than the run's: its threshold is dropped, with a warning
    if det.input_size != size_before and engine != "torch":
        log.warning("%s: tiles of %d px differ from the run's export; scoring with PyTorch", sr.name, det.input_size)
        engine = "torch"
    kind = det.model_.data_kind
    if kind != "image":
        raise ConfigError(f"{run}: the server scores images; this {det.model_name} model takes {kind} data")
    sha = recorded_sha256(run / "model")
    if sha is None:  # Detector.load would have refused it; a guard for the type checker
        raise ModelFileError(f"{run / 'model' / WEIGHTS}: no checksum recorded")
    eng = _engine_for(sr, det, sha, engine, threads)
    return ServedModel(
        name=sr.name,
        run=run,
        engine=eng,
        image_size=int(det.settings["image_size"]),
        resize_mode=str(det.settings["resize_mode"]),
        threshold=None if det.threshold_ is None else float(det.threshold_),
        calibration=det.calibration_,
        color_range=map_range(det),
        info=_describe(run, det, sha, eng.name),
        tiling=det.tiling,
    )


def overlay_png(model: ServedModel, image: torch.Tensor, amap: np.ndarray) -> bytes:
    """The heat-map overlay of one scored image as PNG bytes (the run's fixed colour range)."""
    from PIL import Image

    from reconad.visualize import overlay

    vmin, vmax = model.color_range
    buf = io.BytesIO()
    Image.fromarray(overlay(image, amap, vmin, vmax)).save(buf, format="PNG", compress_level=3)
    return buf.getvalue()
