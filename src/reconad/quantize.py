"""int8 export of a run: ONNX Runtime static quantisation (QDQ), calibrated and checked.

``reconad export RUN --quantize int8`` writes ``RUN/export/model.int8.onnx`` beside the
float export:

* calibration: activation ranges from the run's *held-out normal* training images (the
  same seeded split ``fit`` held out; tiles of them for a tiled run), at most
  ``CALIBRATION_IMAGES`` of them, min-max; weights per output channel, int8;
  activations uint8; QDQ format, so ONNX Runtime fuses each Q-op-DQ into an integer
  kernel where it has one;
* accuracy check: the run's test split is scored by both exports, and image AUROC,
  pixel AUROC and PRO compared, then the detection and false-alarm rates (float's at its
  threshold, int8's at its own).  int8 is *offered* (``--engine onnx-int8`` accepts it)
  only where each of the three stays within ``TOLERANCE`` of the float export's and each
  rate within ``RATE_TOLERANCE`` (or one image of a small split); otherwise, or when
  the test split has no anomalies or masks to measure with, the JSON beside the file
  says why and the engine refuses it;
* its own calibration: int8 scores differ from float's, so the held-out normal images are
  scored by the int8 export and a threshold chosen from them by the run's own rule
  (``int8_calibration`` in the JSON; ``--engine onnx-int8`` compares its scores with it).
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reconad import jsonfile
from reconad.atomic import atomic_path
from reconad.calibration import Calibration
from reconad.data.sizes import dataset_size
from reconad.errors import ConfigError, DataError
from reconad.inference import INT8_FILE, Pipeline, open_run
from reconad.inference.exports import read_export_json

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from reconad.data.spec import DataSpec
    from reconad.detector import Detector

__all__ = ["CALIBRATION_IMAGES", "RATE_TOLERANCE", "TOLERANCE", "QuantizeResult", "quantize_file", "quantize_run"]

CALIBRATION_IMAGES = 32
#: largest change of image AUROC, pixel AUROC or PRO for which int8 is offered
TOLERANCE = 0.005
CHECKED = ("image_auroc", "pixel_auroc", "pro")
#: the verdict rates at the threshold (float's at float's, int8's at its own), checked too
RATES = ("detection_rate", "false_alarm_rate")
#: largest change of either rate for which int8 is offered (or one image of a smaller split)
RATE_TOLERANCE = 0.05


@dataclass
class QuantizeResult:
    path: Path
    offered: bool
    reason: str
    float_metrics: dict[str, float | None]
    int8_metrics: dict[str, float | None]


def _held_out_normals(det: Detector, spec: DataSpec) -> Dataset:
    """The run's held-out normal training images (all of them when fewer than two were held out)."""
    train = spec.build("train")
    held_out = det.held_out(train)
    return held_out if dataset_size(held_out) >= 2 else train


def _calibration_inputs(pipe: Pipeline, source: Any) -> list[np.ndarray]:
    """Model-sized inputs (1, 3, s, s) from held-out normal images (tiles when tiled)."""
    inputs: list[np.ndarray] = []
    for i in range(len(source)):
        image = source[i].image
        if pipe.tiler is not None:
            tiles, _ = pipe.tiler.cut([image])
            inputs.extend(t[None] for t in tiles)
        else:
            inputs.append(image[None].numpy())
        if len(inputs) >= CALIBRATION_IMAGES:
            break
    return [np.ascontiguousarray(x, dtype=np.float32) for x in inputs[:CALIBRATION_IMAGES]]


def _int8_calibration(pipe: Pipeline, normals: Any) -> dict[str, Any] | None:
    """The int8 export's own calibration: its scores of the held-out normals, thresholded by
    the run's rule (None where the run has no calibration to follow)."""
    base = pipe.calibrated.calibration
    if base is None:
        return None
    scores = np.concatenate([s for s, _ in pipe.iter_dataset(normals, want_maps=False)])
    cal = Calibration.fit(
        scores,
        fpr=base.fpr,
        quantile=None if base.fpr is not None else base.quantile,
        source=f"held-out normal, scored by the int8 export ({len(scores)} images)",
        method=base.method,
    )
    return cal.to_dict()


def _pre_process(pre_process: Any, float_path: Path, pre: Path) -> None:
    """ONNX Runtime's pre-processing (graph optimisation, ONNX and symbolic shape inference).
    Its symbolic shape inference cannot follow every graph (a decoder's ``Reshape`` to a
    computed shape fails with a bare AssertionError): such a graph is pre-processed without
    that step, ONNX's own shape inference giving the shapes the quantiser needs."""
    try:
        pre_process(str(float_path), str(pre))
    except Exception:  # onnxruntime's tools raise AssertionError, KeyError, ... on graphs they do not follow
        pre.unlink(missing_ok=True)
        pre_process(str(float_path), str(pre), skip_symbolic_shape=True)


def quantize_file(float_path: Path, target: Path, inputs: list[np.ndarray]) -> None:
    """Write the int8 (QDQ) version of the ONNX file ``float_path`` to ``target``, its
    activation ranges calibrated on ``inputs`` (each (1, 3, s, s) float32)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter({"images": x} for x in inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".quantize-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _pre_process(quant_pre_process, float_path, pre)
            quantize_static(
                str(pre),
                str(target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=_distance_nodes(pre),
            )


def _distance_nodes(path: Path) -> list[str]:
    """The ``Gemm`` nodes of a graph: the nearest-neighbour distances (|b|^2 - 2 a.b, whose two
    terms nearly cancel for a normal vector) stay in float, where 8 bits would lose them."""
    import onnx

    return [n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "Gemm"]


def _test_metrics(pipe: Pipeline, spec: Any, run: Path) -> dict[str, float | None]:
    """The checked metrics of the test split, and the detection and false-alarm rates at the
    pipeline's own threshold (None where the split or the run cannot give one), with the
    number of normal and anomalous test images."""
    from reconad.runs import score_test_split, split_metrics

    test = spec.build("test")
    with tempfile.TemporaryDirectory(dir=run, prefix=".quantize-check-") as tmp:
        tp = score_test_split(pipe, test, Path(tmp) / "scores.csv", Path(tmp))
        metrics = split_metrics(pipe, spec, tp)
    out: dict[str, float | None] = {}
    for key in (*CHECKED, *RATES):
        v = metrics.get(key)
        out[key] = None if v is None or not math.isfinite(float(v)) else float(v)
    out["n_normal"], out["n_anomalous"] = float((tp.labels == 0).sum()), float((tp.labels == 1).sum())
    return out


def _rate_tolerance(count: float | None) -> float:
    """How far a rate over ``count`` images may move: RATE_TOLERANCE, or one image where the
    split is smaller than 1 / RATE_TOLERANCE."""
    return max(RATE_TOLERANCE, 1.0 / count) if count else RATE_TOLERANCE


def _rate_gaps(f: dict[str, float | None], q: dict[str, float | None]) -> list[str]:
    """The rates at the threshold that int8 (at its own threshold) moves beyond their tolerance."""
    out = []
    for key, count in (("detection_rate", q.get("n_anomalous")), ("false_alarm_rate", q.get("n_normal"))):
        a, b = f.get(key), q.get(key)
        if a is None or b is None:
            continue
        if abs(a - b) > _rate_tolerance(count) + 1e-12:
            out.append(f"{key} {a:.3f} -> {b:.3f} at int8's own threshold (> {_rate_tolerance(count):.3f})")
    return out


def _verdict(f: dict[str, float | None], q: dict[str, float | None]) -> tuple[bool, str]:
    gaps: dict[str, float] = {}
    missing = []
    for k in CHECKED:
        a, b = f[k], q[k]
        if a is None or b is None:
            missing.append(k)
        else:
            gaps[k] = abs(float(a) - float(b))
    if missing:
        return False, (
            f"the test split cannot measure {', '.join(missing)} (it needs anomalies, with masks for the pixel "
            "metrics), so int8's accuracy is unknown"
        )
    worst = max(gaps, key=lambda k: gaps[k])
    text = ", ".join(f"{k} {f[k]:.4f} -> {q[k]:.4f}" for k in CHECKED)
    if gaps[worst] > TOLERANCE:
        return False, f"{worst} moves by {gaps[worst]:.4f} (> {TOLERANCE}) with int8: {text}"
    rates = _rate_gaps(f, q)
    if rates:  # the ranking kept, the verdicts not: int8 would call defects normal (or normals defects)
        return False, f"int8's verdicts differ from float's: {'; '.join(rates)} ({text})"
    return True, f"every metric within {TOLERANCE} of float and the verdict rates kept: {text}"


def _quantize(det: Detector, float_path: Path, target: Path, inputs: list[np.ndarray]) -> None:
    """``quantize_file``, a graph ONNX Runtime cannot quantize refused in one line."""
    try:
        quantize_file(float_path, target, inputs)
    except Exception as exc:  # onnxruntime's quantisation tools: assertions and errors of their own
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ConfigError(
            f"--quantize int8: ONNX Runtime cannot quantize {det.model_name}'s graph {float_path} "
            f"({type(exc).__name__}{': ' + first if first else ''}); use --engine onnx"
        ) from None


def quantize_run(run: str | os.PathLike) -> QuantizeResult:
    """Write the run's int8 export and its accuracy check (see the module docstring)."""
    from reconad.runs import align_spec, load_run
    from reconad.serialization import sha256_of

    run = Path(run)
    det, spec = load_run(run)
    if spec is None:
        raise DataError(f"{run} does not say what data it was trained on, so it has no held-out images to calibrate on")
    if det.model_.data_kind != "image" or det.model_.export_blocker() is not None:
        raise ConfigError(f"{det.model_name} does not export to ONNX, so it has no int8 export")
    float_pipe = open_run(run, "onnx")  # the float export, written first when missing (quantising asks for it)
    align_spec(spec, float_pipe)
    assert float_pipe.origin.engine_file is not None
    float_path = float_pipe.origin.engine_file
    normals = _held_out_normals(det, spec)
    target = run / INT8_FILE
    with atomic_path(target) as tmp:
        _quantize(det, float_path, tmp, _calibration_inputs(float_pipe, normals))
        meta = read_export_json(float_path, run)
    meta.update({"quantization": _description(), "onnx_sha256": sha256_of(target), "accuracy_check": None})
    jsonfile.write_json(target.with_suffix(".json"), meta)  # not offered until the check below passes
    int8_pipe = float_pipe.with_engine_file("onnx-int8", target)
    with torch.inference_mode():
        meta["int8_calibration"] = _int8_calibration(int8_pipe, normals)
        # thresholded by its own calibration, as --engine onnx-int8 is
        int8_pipe = replace(int8_pipe, calibrated=int8_pipe.calibrated.with_own(meta["int8_calibration"], "onnx-int8"))
        f, q = _test_metrics(float_pipe, spec, run), _test_metrics(int8_pipe, spec, run)
    offered, reason = _verdict(f, q)
    meta["accuracy_check"] = {
        "offered": offered,
        "reason": reason,
        "tolerance": TOLERANCE,
        "rate_tolerance": RATE_TOLERANCE,
        "float": f,
        "int8": q,
    }
    jsonfile.write_json(target.with_suffix(".json"), meta)
    return QuantizeResult(target, offered, reason, f, q)


def _description() -> dict[str, Any]:
    return {
        "method": "onnxruntime static quantisation, QDQ format",
        "weights": "int8, per output channel",
        "activations": "uint8, per tensor, min-max ranges",
        "calibration": f"up to {CALIBRATION_IMAGES} held-out normal training images of the run (tiles when tiled)",
    }
