"""One fitted inference pipeline for every way of scoring.

``Pipeline`` (immutable) holds the input spec, one scorer interface on numpy batches with
interchangeable engines (PyTorch, ONNX Runtime float and int8, OpenVINO), the tiler, the
calibration and its identity (a fingerprint of model file, configuration, engine and
tiling).  Build one with ``from_detector(det)`` or ``open_run(RUN, engine=...)``; another
engine or tiling is a new pipeline (``with_engine``, ``with_tiling``).  ``Detector``,
``reconad test`` / ``predict`` / ``serve`` / ``export`` / ``quantize`` and the speed
protocol all score through it.  Importing this package does not import PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconad.inference.build import NotImages, Pipeline, from_detector, open_run
    from reconad.inference.calibrated import Calibrated
    from reconad.inference.engines import (
        INPUT_NAME,
        OUTPUT_NAMES,
        OnnxDetector,
        OnnxScorer,
        OpenVinoScorer,
        Scorer,
        TorchScorer,
        machine_threads,
    )
    from reconad.inference.exports import EXPORT_FILE, INT8_FILE, check_export, int8_export
    from reconad.inference.identity import Identity
    from reconad.inference.names import DEFAULT_ENGINE, ENGINES
    from reconad.inference.run_files import RUN_FILE, read_run_info
    from reconad.inference.spec import InputSpec
    from reconad.inference.tiler import Tiler

#: where each public name lives (imported on first use: ``import reconad.inference`` stays cheap)
_WHERE = {
    "NotImages": "reconad.inference.build",
    "Pipeline": "reconad.inference.build",
    "from_detector": "reconad.inference.build",
    "open_run": "reconad.inference.build",
    "Calibrated": "reconad.inference.calibrated",
    "INPUT_NAME": "reconad.inference.engines",
    "OUTPUT_NAMES": "reconad.inference.engines",
    "OnnxDetector": "reconad.inference.engines",
    "OnnxScorer": "reconad.inference.engines",
    "OpenVinoScorer": "reconad.inference.engines",
    "Scorer": "reconad.inference.engines",
    "TorchScorer": "reconad.inference.engines",
    "machine_threads": "reconad.inference.engines",
    "DEFAULT_ENGINE": "reconad.inference.names",
    "ENGINES": "reconad.inference.names",
    "EXPORT_FILE": "reconad.inference.exports",
    "INT8_FILE": "reconad.inference.exports",
    "check_export": "reconad.inference.exports",
    "int8_export": "reconad.inference.exports",
    "Identity": "reconad.inference.identity",
    "RUN_FILE": "reconad.inference.run_files",
    "read_run_info": "reconad.inference.run_files",
    "InputSpec": "reconad.inference.spec",
    "Tiler": "reconad.inference.tiler",
}

__all__ = [
    "Calibrated",
    "DEFAULT_ENGINE",
    "ENGINES",
    "EXPORT_FILE",
    "INPUT_NAME",
    "INT8_FILE",
    "Identity",
    "InputSpec",
    "NotImages",
    "OUTPUT_NAMES",
    "OnnxDetector",
    "OnnxScorer",
    "OpenVinoScorer",
    "Pipeline",
    "RUN_FILE",
    "Scorer",
    "Tiler",
    "TorchScorer",
    "check_export",
    "from_detector",
    "int8_export",
    "machine_threads",
    "open_run",
    "read_run_info",
]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'reconad.inference' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
