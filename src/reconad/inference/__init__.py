"""One fitted inference pipeline for every way of scoring.

``Pipeline`` (immutable) holds the input spec, one scorer interface on numpy batches with
interchangeable engines (PyTorch, ONNX Runtime float and int8, OpenVINO), the tiler, the
calibration and its identity (a fingerprint of model file, configuration, engine and
tiling).  Build one with ``from_detector(det)`` or ``open_run(RUN, engine=...)``; another
engine or tiling is a new pipeline (``with_engine``, ``with_tiling``).  ``Detector``,
``reconad test`` / ``predict`` / ``serve`` / ``export`` / ``quantize`` and the speed
protocol all score through it.  Importing this package does not import PyTorch.
"""

from reconad.inference.build import NotImages, Pipeline, from_detector, open_run
from reconad.inference.calibrated import Calibrated
from reconad.inference.engines import (
    DEFAULT_ENGINE,
    ENGINES,
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
from reconad.inference.run_files import RUN_FILE, read_run_info
from reconad.inference.spec import InputSpec
from reconad.inference.tiler import Tiler

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "EXPORT_FILE",
    "INPUT_NAME",
    "INT8_FILE",
    "OUTPUT_NAMES",
    "RUN_FILE",
    "Calibrated",
    "Identity",
    "InputSpec",
    "NotImages",
    "OnnxDetector",
    "OnnxScorer",
    "OpenVinoScorer",
    "Pipeline",
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
