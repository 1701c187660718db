"""The models a server holds: a run folder's pipeline (``reconad.inference``), built once.

The engine follows ``reconad.inference.open_run``: ``auto`` is ONNX Runtime where the run
has a valid export, PyTorch otherwise (the server never writes an export; ``reconad
export RUN`` does); an export that records other weights (stale) or whose file does not
match its own checksum (replaced) is refused, never silently used.  The model file is
checked against its SHA-256, and only safetensors and JSON are read (no pickle, no code
from model files).  Uploads are scored by the same pipeline (spec, engine, tiler,
calibration) as ``reconad predict``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.errors import ConfigError, ModelFileError
from reconad.inference import NotImages, Pipeline, Scorer, Tiler, open_run, read_run_info
from reconad.serve.config import ServedRun

__all__ = ["Engine", "ServedModel", "load_served_model", "overlay_png"]

log = logging.getLogger("reconad.serve")

#: the one scorer interface (reconad.inference.Scorer), under the name the server used for it
Engine = Scorer


@dataclass(frozen=True)
class ServedModel:
    """One loaded run: its pipeline and what answers about its scores say."""

    name: str
    run: Path
    pipeline: Pipeline
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def engine(self) -> Scorer:
        return self.pipeline.scorer

    @property
    def image_size(self) -> int:
        return self.pipeline.spec.image_size

    @property
    def resize_mode(self) -> str:
        return self.pipeline.spec.resize_mode

    @property
    def threshold(self) -> float | None:
        return self.pipeline.threshold

    @property
    def calibration(self) -> Any:
        return self.pipeline.calibrated.calibration

    @property
    def color_range(self) -> tuple[float, float]:
        return self.pipeline.calibrated.color_range

    @property
    def tiling(self) -> Tiler | None:
        """The tiler of a model that scores by tiles (reconad.inference.Tiler), else None."""
        return self.pipeline.tiler

    @property
    def decode_size(self) -> int | None:
        """The size uploads are decoded at: ``image_size``, or their own (None) when tiled."""
        return self.pipeline.spec.decode_size

    @property
    def input_size(self) -> int:
        """The side of the squares the engine scores."""
        return self.pipeline.input_size

    @property
    def sha256(self) -> str:
        return str(self.info["model_sha256"])

    def p_values(self, scores: np.ndarray) -> np.ndarray:
        return self.pipeline.p_values(scores)

    def verdict(self, score: float) -> str | None:
        """``anomalous`` above the threshold, ``normal`` at or below it (None: no threshold)."""
        labels = self.pipeline.labels([score])
        return None if labels is None else ("anomalous" if labels[0] else "normal")

    def warm_up(self, max_batch: int) -> None:
        """First forward passes allocate and pick kernels; do them before /readyz says ready."""
        for n in sorted({1, max_batch}):
            self.engine(np.zeros((n, 3, self.input_size, self.input_size), dtype=np.float32))


def _training_data(run: Path) -> str | None:
    """The run's data in words, as train_run recorded it (None without a readable record)."""
    from reconad.data.spec import DataSpec

    try:
        info = read_run_info(run)
        return None if info is None else DataSpec(**info["data"]).describe()
    except (ModelFileError, TypeError):
        return None


def load_served_model(
    sr: ServedRun, engine: str = "auto", threads: int = 1, tiling: tuple[int | None, int | None] = (None, None)
) -> ServedModel:
    """Load a run for serving; ModelFileError naming the file when the model was tampered with."""
    run = Path(sr.path)
    if not run.is_dir():
        raise ModelFileError(f"no such run directory: {run}")
    try:
        pipe = open_run(run, engine, *tiling, threads=threads, device="cpu")
    except NotImages as exc:
        raise ConfigError(f"{run}: the server scores images; {exc}") from None
    if pipe.engine == "torch" and engine == "auto":
        log.warning("%s: no valid ONNX export in %s; scoring with PyTorch", sr.name, run)
    # PyTorch only resizes uploads under an exported engine: the engine has the cores then
    torch.set_num_threads(threads if pipe.engine == "torch" else 1)
    info = {
        **pipe.describe(),
        "tiling": pipe.tiling,
        "training_data": _training_data(run),
        "model_sha256": pipe.identity.model_sha256,
        "fingerprint": pipe.fingerprint,
    }
    return ServedModel(name=sr.name, run=run, pipeline=pipe, info=info)


def overlay_png(model: ServedModel, image: torch.Tensor, amap: np.ndarray) -> bytes:
    """The heat-map overlay of one scored image as PNG bytes (the run's fixed colour range)."""
    from reconad.png_writer import encode_rgb_png
    from reconad.visualize import overlay

    vmin, vmax = model.color_range
    return encode_rgb_png(overlay(image, amap, vmin, vmax))
