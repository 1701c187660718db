"""Export a trained image detector to ONNX, and run the exported file with onnxruntime.

The ONNX graph takes the *pre-processed* image batch ``images``: float32, (N, 3, H, W),
RGB, values in [0, 1] (8-bit pixels divided by 255), already resized to the model's
``image_size`` the way ``reconad.data.image_io.load_image`` does (bilinear,
antialiased; ``resize_mode`` resize / pad / crop).  Everything after that, the
backbone's own mean/std normalisation included, is inside the graph.  The batch axis
is dynamic.  Outputs: ``scores`` (N,) and ``maps`` (N, H, W), the same as
``Detector.decision_function`` / ``anomaly_map``.

Beside ``model.onnx`` a ``model.json`` records that pre-processing, the output names,
the threshold and the calibration (held-out normal scores, so a deployment can compute
p-values without reconad).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from reconad import jsonfile
from reconad.atomic import atomic_path
from reconad.data.records import ImageBatch
from reconad.engines import INPUT_NAME, OUTPUT_NAMES, OnnxDetector
from reconad.errors import ConfigError, DataError, ReconadError
from reconad.models.base import AnomalyModel

__all__ = ["export_onnx", "OnnxDetector", "ScoreGraph", "EXPORT_FORMATS", "INPUT_NAME", "OUTPUT_NAMES"]

EXPORT_FORMATS = ("onnx",)
OPSET = 17


class ScoreGraph(nn.Module):
    """A model's ``predict_step`` on bare images, as the (scores, maps) graph the exporter traces."""

    def __init__(self, model: AnomalyModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.predict_step(ImageBatch.of(images))
        if out.maps is None:
            raise ConfigError(f"{self.model.name} gives no anomaly maps; export takes image models")
        return out.scores, out.maps


def _preprocessing(det: Any, model: AnomalyModel) -> dict[str, Any]:
    size = det.input_size
    norm = model.input_normalisation()
    return {
        "input_name": INPUT_NAME,
        "shape": ["batch", 3, size, size],
        "dtype": "float32",
        "layout": "NCHW",
        "color": "RGB (grayscale replicated to 3 channels, alpha dropped)",
        "value_range": [0.0, 1.0],
        "scale": "pixel / 255 (8-bit), pixel / 65535 (16-bit)",
        "image_size": size,
        "resize_mode": str(det.settings["resize_mode"]),
        "resize": "bilinear, antialiased (torch.nn.functional.interpolate(..., antialias=True)); "
        "see reconad.data.image_io",
        "normalisation_in_graph": None
        if norm is None
        else {**norm, "note": "applied inside the graph: do not normalise the input yourself"},
        "tiling": _tiling(det),
    }


def _tiling(det: Any) -> dict[str, Any] | None:
    """How a tiled model's graph is used on whole images (None: images resized to the input)."""
    if det.tiling is None:
        return None
    tile, overlap = det.tiling
    return {
        "tile_size": tile,
        "overlap": overlap,
        "image": "read at its own resolution (no resize); padded by reflection up to the tile when smaller",
        "positions": "stride tile - overlap from the top-left; the last row/column of tiles ends at the border",
        "map": "tile maps blended with separable linear ramps over the overlap (reconad.tiling.blend_window)",
        "score": "the highest tile score",
    }


def _metadata(det: Any, model: AnomalyModel, opset: int) -> dict[str, Any]:
    size = det.input_size
    cal = det.calibration_
    return {
        "format": "onnx",
        "opset": opset,
        "reconad_model": det.model_name,
        "model_config": model.config.to_dict(),
        "preprocessing": _preprocessing(det, model),
        "outputs": {
            OUTPUT_NAMES[0]: {"shape": ["batch"], "meaning": "image anomaly score, higher = more anomalous"},
            OUTPUT_NAMES[1]: {"shape": ["batch", size, size], "meaning": "pixel anomaly map at the input resolution"},
        },
        "threshold": det.threshold_,
        "threshold_basis": None if cal is None else cal.basis,
        "calibration": None if cal is None else cal.to_dict(),
        "p_value": "(1 + #{calibration.normal_scores >= score}) / (n_normal + 1)",
    }


def export_onnx(det: Any, path: str | os.PathLike, opset: int = OPSET, weights_sha256: str | None = None) -> Path:
    """Write ``det``'s model as ONNX to ``path`` and its pre-processing to ``path``.json.

    Both files are written under temporary names and renamed at the end, so a failed
    export leaves nothing half-written behind (nor a folder it had to create).  A model
    that cannot be exported, an exporter failure and an exported graph whose scores differ
    from PyTorch's on a check batch are each a one-line ConfigError.  The JSON records the
    SHA-256 of the ONNX file and, when given, ``weights_sha256`` (the model file it was
    exported from), so a stale or swapped export can be told apart (the ONNX engines and
    ``reconad serve`` refuse one).
    """
    model: AnomalyModel = det._require_model("export")
    blocker = model.export_blocker()
    if blocker is not None:
        raise ConfigError(f"cannot export {det.model_name}: {blocker}")
    path = Path(path)
    if path.is_dir():
        raise DataError(f"--out {path} is a directory: give the file to write, e.g. {path / 'model.onnx'}")
    created = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp_model:
            _trace(det, model, tmp_model, opset)
            from reconad.serialization import sha256_of

            meta = {
                **_metadata(det, model, opset),
                "weights_sha256": weights_sha256,
                "onnx_sha256": sha256_of(tmp_model),
            }
            jsonfile.write_json(path.with_suffix(".json"), meta)
    except BaseException:
        for folder in created:  # the folders this export made, when nothing else is in them
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    finally:
        model.to(det._device)
    return path


def _trace(det: Any, model: AnomalyModel, target: Path, opset: int) -> None:
    """Trace the scoring graph into ``target`` and check it against PyTorch (ConfigError, one line)."""
    size = det.input_size
    graph = ScoreGraph(model).cpu().eval()
    gen = torch.Generator().manual_seed(0)  # not the global generator: exporting changes no random state
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes fixed at export (H, W are)
            torch.onnx.export(
                graph,
                (torch.rand(2, 3, size, size, generator=gen),),
                str(target),
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAMES[0]: {0: "batch"}, OUTPUT_NAMES[1]: {0: "batch"}},
                opset_version=opset,
                dynamo=False,
            )
    except ReconadError:
        raise
    except Exception as exc:  # the exporter's own error types; their text can run to hundreds of lines
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ConfigError(
            f"cannot export {det.model_name}: the ONNX exporter failed ({type(exc).__name__}: {first}); "
            "score it with --engine torch"
        ) from None
    _check_parity(det, graph, target, torch.rand(3, 3, size, size, generator=gen))


def _check_parity(det: Any, graph: ScoreGraph, onnx_file: Path, images: torch.Tensor) -> None:
    """Refuse an export whose scores or maps differ from PyTorch's on ``images`` (another batch
    size than the traced one, so a constant baked in for one batch shows)."""
    import numpy as np

    with torch.inference_mode():
        s_t, m_t = (t.float().numpy() for t in graph(images))
    s_o, m_o = OnnxDetector(onnx_file, threads=1)(images)
    if s_o.shape != s_t.shape or m_o.shape != m_t.shape:
        gap = float("inf")
    else:
        spread = max(float(np.ptp(m_t)), float(np.abs(m_t).max()), 1e-12)
        gap = max(
            float(np.max(np.abs(s_o - s_t) / (1e-3 * np.maximum(np.abs(s_t), 1.0)))),
            float(np.max(np.abs(m_o - m_t))) / (1e-3 * spread),
        )
    if not gap <= 1.0:
        raise ConfigError(
            f"cannot export {det.model_name}: the exported graph does not reproduce PyTorch's scores "
            f"(off by {gap:.3g}x the tolerance on a check batch); score it with --engine torch"
        )
