"""Write a torch pipeline's model as ONNX, with its pre-processing, tiling and calibration
in JSON beside it (``reconad export``; the float export every ONNX engine runs).

The ONNX graph takes the *pre-processed* image batch ``images``: float32, (N, 3, H, W),
RGB, values in [0, 1], already resized the way ``InputSpec`` reads images.  Everything
after that, the backbone's own mean/std normalisation included, is inside the graph.
The batch axis is dynamic.  Outputs: ``scores`` (N,) and ``maps`` (N, H, W).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from reconad.atomic import atomic_path
from reconad.data.records import ImageBatch
from reconad.errors import ConfigError, DataError, ReconadError
from reconad.inference.engines import INPUT_NAME, OUTPUT_NAMES, OnnxDetector, TorchScorer
from reconad.jsonfile import write_json

if TYPE_CHECKING:
    from reconad.inference.pipeline import FittedPipeline as Pipeline

__all__ = ["OPSET", "ScoreGraph", "write_onnx"]

OPSET = 17


class ScoreGraph(nn.Module):
    """A model's ``predict_step`` on bare images, as the (scores, maps) graph the exporter traces."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model.predict_step(ImageBatch.of(images))
        if out.maps is None:
            raise ConfigError(f"{self.model.name} gives no anomaly maps; export takes image models")
        return out.scores, out.maps


def _metadata(pipe: Pipeline, model: Any, opset: int) -> dict[str, Any]:
    size = pipe.input_size
    norm = model.input_normalisation()
    cal = pipe.calibrated.calibration
    pre = {
        "input_name": INPUT_NAME,
        "shape": ["batch", 3, size, size],
        **pipe.spec.describe(),
        "normalisation_in_graph": None
        if norm is None
        else {**norm, "note": "applied inside the graph: do not normalise the input yourself"},
        "tiling": None if pipe.tiler is None else pipe.tiler.describe(),
    }
    return {
        "format": "onnx",
        "opset": opset,
        "reconad_model": pipe.model_name,
        "model_config": model.config.to_dict(),
        "preprocessing": pre,
        "outputs": {
            OUTPUT_NAMES[0]: {"shape": ["batch"], "meaning": "image anomaly score, higher = more anomalous"},
            OUTPUT_NAMES[1]: {"shape": ["batch", size, size], "meaning": "pixel anomaly map at the input resolution"},
        },
        "threshold": pipe.threshold,
        "threshold_basis": None if cal is None else cal.basis,
        "calibration": None if cal is None else cal.to_dict(),
        "p_value": "(1 + #{calibration.normal_scores >= score}) / (n_normal + 1)",
    }


def write_onnx(pipe: Pipeline, path: str | os.PathLike, opset: int = OPSET, weights_sha256: str | None = None) -> Path:
    """Write ``pipe``'s model (a torch pipeline) as ONNX to ``path`` and its JSON to ``path``.json.

    Both files are written under temporary names and renamed at the end, so a failed
    export leaves nothing half-written behind (nor a folder it had to create).  A model
    that cannot be exported, an exporter failure and an exported graph whose scores differ
    from PyTorch's on a check batch are each a one-line ConfigError.  The JSON records the
    SHA-256 of the ONNX file and, when given, ``weights_sha256`` (the model file it was
    exported from), so a stale or swapped export can be told apart.
    """
    if not isinstance(pipe.scorer, TorchScorer):
        raise ConfigError(f"export starts from the PyTorch model, not the {pipe.engine} engine")
    model = pipe.scorer.model
    blocker = model.export_blocker()
    if blocker is not None:
        raise ConfigError(f"cannot export {pipe.model_name}: {blocker}")
    path = Path(path)
    if path.is_dir():
        raise DataError(f"--out {path} is a directory: give the file to write, e.g. {path / 'model.onnx'}")
    created = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    device = next(iter(model.parameters()), torch.empty(0)).device
    try:
        with atomic_path(path) as tmp_model:
            _trace(pipe, model, tmp_model, opset)
            from reconad.serialization import sha256_of

            meta = {
                **_metadata(pipe, model, opset),
                "weights_sha256": weights_sha256,
                "onnx_sha256": sha256_of(tmp_model),
            }
            write_json(path.with_suffix(".json"), meta)
    except BaseException:
        for folder in created:  # the folders this export made, when nothing else is in them
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise
    finally:
        model.to(device)
    return path


def _trace(pipe: Pipeline, model: Any, target: Path, opset: int) -> None:
    """Trace the scoring graph into ``target`` and check it against PyTorch (ConfigError, one line)."""
    size = pipe.input_size
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
            f"cannot export {pipe.model_name}: the ONNX exporter failed ({type(exc).__name__}: {first}); "
            "score it with --engine torch"
        ) from None
    _fold_pads(target)
    _check_parity(pipe.model_name, graph, target, torch.rand(3, 3, size, size, generator=gen))


def _fold_pads(target: Path) -> None:
    """Fold the exported graph's zero pads into its convolutions (``pad_folding``), in place."""
    import onnx

    from reconad.inference.pad_folding import fold_pads

    model = onnx.load(str(target))
    if fold_pads(model):
        onnx.save(model, str(target))


def _check_parity(name: str, graph: ScoreGraph, onnx_file: Path, images: torch.Tensor) -> None:
    """Refuse an export whose scores or maps differ from PyTorch's on ``images`` (another batch
    size than the traced one, so a constant baked in for one batch shows)."""
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
            f"cannot export {name}: the exported graph does not reproduce PyTorch's scores "
            f"(off by {gap:.3g}x the tolerance on a check batch); score it with --engine torch"
        )
