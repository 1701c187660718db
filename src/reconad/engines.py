"""Where a run's images are scored: ONNX Runtime (the default), its int8 export, or PyTorch.

``auto`` (the default of ``predict``, ``test``, ``report`` and ``serve``) means ONNX
Runtime wherever the model exports, PyTorch otherwise (tables, video, AnoGAN's latent
search, the VAE's seeded draws).  The export is written into the run on first use
(``RUN/export/model.onnx``; should that export fail, ``auto`` scores with PyTorch and
warns) and records the SHA-256 of the model file it came from; an export that records
other weights (stale, or copied from another run) or whose own file does not match its
checksum is refused by every ONNX engine, ``auto`` included, never silently used nor
silently replaced (the file may be someone's deployment): the error says to re-export
with ``reconad export RUN``, or to score with ``--engine torch``.  ``onnx-int8`` runs
the statically quantised export of ``reconad export RUN --quantize int8``
(``reconad.quantize``), which is offered only where its accuracy check passed.

A scorer takes pre-processed images (B, 3, H, W) float in [0, 1] and returns
(scores (B,), maps (B, H, W)) as torch tensors, whatever the engine.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reconad.errors import ConfigError, DataError, ModelFileError

__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "EXPORT_FILE",
    "INPUT_NAME",
    "INT8_FILE",
    "OUTPUT_NAMES",
    "OnnxDetector",
    "Scorer",
    "engine_export",
    "ensure_export",
    "machine_threads",
    "onnx_scorer",
    "resolve_engine",
    "run_scorer",
]

log = logging.getLogger("reconad")

ENGINES = ("auto", "onnx", "onnx-int8", "torch")
DEFAULT_ENGINE = "auto"
#: where ``reconad export RUN`` writes the ONNX model (and where the onnx engine looks)
EXPORT_FILE = Path("export") / "model.onnx"
#: the int8 export of ``reconad export RUN --quantize int8``
INT8_FILE = Path("export") / "model.int8.onnx"
#: the exported graph's input and outputs (reconad.export)
INPUT_NAME = "images"
OUTPUT_NAMES = ("scores", "maps")

if TYPE_CHECKING:
    import torch

#: pre-processed images (B, 3, H, W) -> (scores (B,), maps (B, H, W))
Scorer = Callable[["torch.Tensor"], tuple["torch.Tensor", "torch.Tensor"]]


def machine_threads() -> int:
    """The cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_engine(det: Any, engine: str) -> str:
    """``auto`` -> ``onnx`` where the model exports, else ``torch``; an explicit ONNX engine
    for a model that cannot export is a ConfigError naming why."""
    if engine not in ENGINES:
        raise DataError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "torch":
        return engine
    model = det.model_
    blocker = "it scores table rows or video clips" if model.data_kind != "image" else model.export_blocker()
    if blocker is None:
        return "onnx" if engine == "auto" else engine
    if engine == "auto":
        return "torch"
    raise ConfigError(f"--engine {engine}: {det.model_name} does not export ({blocker}); use --engine torch")


def _recorded(meta_path: Path, path: Path, run_dir: Path) -> dict[str, Any]:
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{meta_path}: missing or unreadable beside {path} ({exc})") from None
    if meta.get("weights_sha256") is None:
        raise ModelFileError(
            f"{path} records no model checksum (an older export): run `reconad export {run_dir}` to re-export it"
        )
    return meta


def check_export(path: Path, run_dir: Path, weights_sha256: str) -> dict[str, Any]:
    """The JSON beside an export, once the export is shown to come from this run's model file."""
    from reconad.serialization import sha256_of

    meta_path = path.with_suffix(".json")
    meta = _recorded(meta_path, path, run_dir)
    if meta["weights_sha256"] != weights_sha256:
        raise ModelFileError(
            f"{path} was exported from other weights than {run_dir / 'model'} (stale or foreign): "
            f"run `reconad export {run_dir}` to re-export it"
        )
    if meta.get("onnx_sha256") != sha256_of(path):
        raise ModelFileError(
            f"{path} does not match its checksum in {meta_path}: the file was modified or replaced "
            f"(e.g. copied from another run): run `reconad export {run_dir}` to re-export it"
        )
    return meta


def ensure_export(run_dir: Path, det: Any, weights_sha256: str) -> Path:
    """The run's ONNX export, written now if missing; ModelFileError for a stale or replaced one."""
    from reconad.export import export_onnx

    path = run_dir / EXPORT_FILE
    if not path.exists():
        log.info("exporting %s to ONNX (first use)", run_dir)
        return export_onnx(det, path, weights_sha256=weights_sha256)
    check_export(path, run_dir, weights_sha256)
    return path


def int8_export(run_dir: Path, weights_sha256: str) -> Path:
    """The run's int8 export, when it exists, matches the model and passed its accuracy check."""
    path = run_dir / INT8_FILE
    if not path.exists():
        raise ConfigError(f"{path} does not exist: run `reconad export {run_dir} --quantize int8` first")
    meta = check_export(path, run_dir, weights_sha256)
    check = meta.get("accuracy_check") or {}
    if not check.get("offered"):
        raise ConfigError(f"int8 is not offered for {run_dir}: {check.get('reason', 'no accuracy check recorded')}")
    return path


def engine_export(run_dir: Path, det: Any, weights_sha256: str, engine: str) -> Path:
    """The checked export file an ONNX engine (``onnx`` or ``onnx-int8``) runs."""
    if engine == "onnx-int8":
        return int8_export(run_dir, weights_sha256)
    return ensure_export(run_dir, det, weights_sha256)


def onnx_scorer(path: Path, threads: int | None = None) -> Scorer:
    """A scorer on an ONNX export (``OnnxDetector``) that takes and gives torch tensors."""
    import torch

    session = OnnxDetector(path, threads=threads)

    def score(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, m = session(images)
        return torch.from_numpy(s), torch.from_numpy(m)

    return score


def run_scorer(
    run_dir: Path, det: Any, engine: str = DEFAULT_ENGINE, threads: int | None = None, run_input_size: int | None = None
) -> tuple[str, Scorer]:
    """(engine used, scorer) for a loaded run: see the module docstring.

    ``run_input_size``: the input size of the run as trained, when the caller re-tiled the
    detector since (``reconad.runs.retile``); tiles of another size than the export's
    are scored with PyTorch, with a warning.
    """
    from reconad.serialization import recorded_sha256

    used = resolve_engine(det, engine)
    if used != "torch" and run_input_size is not None and det.input_size != run_input_size:
        warnings.warn(
            f"tiles of {det.input_size} px differ from the run's export ({run_input_size} px); scoring with PyTorch",
            stacklevel=2,
        )
        used = "torch"
    if used == "torch":
        return used, det.image_scorer(det.model_)
    run_dir = Path(run_dir)
    sha = recorded_sha256(run_dir / "model")
    if sha is None:
        raise ModelFileError(f"{run_dir / 'model'}: no checksum recorded")
    try:
        path = engine_export(run_dir, det, sha, used)
    except ConfigError as exc:  # the first-use export failed (a stale or foreign one is a ModelFileError)
        if engine != "auto":
            raise
        warnings.warn(f"{exc}; scoring with PyTorch", stacklevel=2)
        return "torch", det.image_scorer(det.model_)
    return used, onnx_scorer(path, threads)


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
        x = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
        if x.ndim != 4 or x.shape[1] != 3:
            raise DataError(f"expected pre-processed images (N, 3, H, W), got {x.shape}")
        scores, maps = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})
        return scores, maps
