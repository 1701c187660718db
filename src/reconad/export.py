"""``reconad export``: a fitted model as ONNX, with its pre-processing in JSON beside it.

The writer is ``reconad.inference.onnx_writer`` (what the graph takes and gives, how it is
checked against PyTorch); this module is the entry for a ``Detector`` or a pipeline.
Beside ``model.onnx`` a ``model.json`` records the pre-processing, the output names, the
tiling, the threshold and the calibration (held-out normal scores, so a deployment can
compute p-values without reconad), the SHA-256 of the model file it came from and of
itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from reconad.inference.engines import INPUT_NAME, OUTPUT_NAMES, OnnxDetector
from reconad.inference.onnx_writer import OPSET, ScoreGraph, write_onnx

if TYPE_CHECKING:
    from reconad.detector import Detector
    from reconad.inference import Pipeline

__all__ = [
    "EXPORT_FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "OnnxDetector",
    "ScoreGraph",
    "export_onnx",
    "export_pipeline",
]

EXPORT_FORMATS = ("onnx",)


def export_pipeline(
    pipe: Pipeline, path: str | os.PathLike, opset: int = OPSET, weights_sha256: str | None = None
) -> Path:
    """Write a torch pipeline's model as ONNX to ``path`` (see ``reconad.inference.onnx_writer``)."""
    return write_onnx(pipe, path, opset, weights_sha256)


def export_onnx(det: Detector, path: str | os.PathLike, opset: int = OPSET, weights_sha256: str | None = None) -> Path:
    """Write a fitted ``Detector``'s model as ONNX to ``path`` and its JSON to ``path``.json
    (ConfigError, one line, for a model that cannot export, e.g. one of table rows)."""
    from reconad.errors import ConfigError

    blocker = det.fitted_model("export").export_blocker()
    if blocker is not None:
        raise ConfigError(f"cannot export {det.model_name}: {blocker}")
    return write_onnx(det.pipeline(), path, opset, weights_sha256)
