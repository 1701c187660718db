"""The one scorer interface and its engines: PyTorch, ONNX Runtime (float and int8), OpenVINO.

A scorer takes pre-processed images, a numpy array (N, 3, H, W) float32 in [0, 1], and
returns numpy ``(scores (N,), maps (N, H, W) or None)``, whatever the engine.  Every
consumer (``Detector``, ``reconad test`` / ``predict`` / ``serve`` / ``quantize``, the
speed protocol) scores through one of these, inside a ``reconad.inference.Pipeline``.

This module imports neither PyTorch nor onnxruntime: each engine loads its library when
it is built, so the ONNX path of ``reconad predict`` starts without PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.inference.names import DEFAULT_ENGINE, ENGINES, FILE_ENGINES, check_engine_name

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "FILE_ENGINES",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "OnnxDetector",
    "OnnxScorer",
    "OpenVinoScorer",
    "Scorer",
    "TorchScorer",
    "check_engine_name",
    "machine_threads",
]

#: the exported graph's input and outputs
INPUT_NAME = "images"
OUTPUT_NAMES = ("scores", "maps")


class Scorer(Protocol):
    """Scores a pre-processed batch (N, 3, H, W) float32: (scores (N,), maps (N, H, W) or None)."""

    name: str

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


def machine_threads() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _as_batch(images: Any) -> np.ndarray:
    x = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if x.ndim != 4 or x.shape[1] != 3:
        raise DataError(f"expected pre-processed images (N, 3, H, W), got {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


class OnnxDetector:
    """Score pre-processed image batches with an exported file (onnxruntime, CPU; all graph
    optimisations on, ``threads`` intra-op threads, default the cores this process may use)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - a dependency
            raise ConfigError("the onnx engine needs onnxruntime: pip install onnxruntime") from exc
        self.path = Path(path)
        if not self.path.exists():
            raise ModelFileError(f"no exported model at {self.path}: run `reconad export RUN --format onnx`")
        opts = ort.SessionOptions()
        # One pool of the machine's cores inside each operator; the graph runs its nodes in order.
        opts.intra_op_num_threads = int(threads) if threads else machine_threads()
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{self.path}: not a readable ONNX model: {exc}") from exc

    def __call__(self, images: Any) -> tuple[np.ndarray, np.ndarray]:
        """(scores, maps) of pre-processed images: a numpy array or a torch tensor."""
        scores, maps = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: _as_batch(images)})
        return scores, maps


class OnnxScorer:
    """ONNX Runtime on an exported file (``onnx``, or ``onnx-int8`` on the int8 export)."""

    def __init__(self, path: Path, threads: int | None = None, name: str = "onnx") -> None:
        self.name, self.path = name, Path(path)
        self.session = OnnxDetector(path, threads=threads)

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        return self.session(images)


class OpenVinoScorer:
    """OpenVINO (CPU) on the float ONNX export: the optional extra ``reconad[openvino]``."""

    name = "openvino"

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import openvino as ov
        except ImportError:
            raise ConfigError("--engine openvino needs OpenVINO: pip install 'reconad[openvino]'") from None
        self.path = Path(path)
        core = ov.Core()
        config = {"INFERENCE_NUM_THREADS": int(threads or machine_threads()), "INFERENCE_PRECISION_HINT": "f32"}
        try:
            self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        except Exception as exc:  # OpenVINO raises its own exception types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ModelFileError(f"{self.path}: OpenVINO cannot compile it ({first})") from None
        self.request = self.compiled.create_infer_request()

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        out = self.request.infer({INPUT_NAME: _as_batch(images)})
        by_name = {name: value for port, value in out.items() for name in port.get_names()}
        return np.asarray(by_name[OUTPUT_NAMES[0]]), np.asarray(by_name[OUTPUT_NAMES[1]])


class TorchScorer:
    """A fitted model's ``predict_step`` in PyTorch on ``device`` (inference mode)."""

    name = "torch"

    def __init__(self, model: Any, device: Any = None) -> None:
        self.model = model
        self.device = device

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        import torch

        from reconad.data.records import ImageBatch

        x = images if isinstance(images, torch.Tensor) else torch.from_numpy(_as_batch(images))
        if self.device is not None:
            x = x.to(self.device)
        with torch.inference_mode():
            out = self.model.predict_step(ImageBatch.of(x))
        maps = None if out.maps is None else out.maps.float().cpu().numpy()
        return out.scores.float().cpu().numpy(), maps
