"""int8 export of a run: ONNX Runtime static quantisation (QDQ), calibrated and checked.

``reconad export RUN --quantize int8`` writes ``RUN/export/model.int8.onnx`` beside the
float export:

* calibration: activation ranges from the run's *held-out normal* training images (the
  same seeded split ``fit`` held out; tiles of them for a tiled run), at most
  ``CALIBRATION_IMAGES`` of them, min-max; weights per output channel, int8;
  activations uint8; QDQ format, so ONNX Runtime fuses each Q-op-DQ into an integer
  kernel where it has one;
* accuracy check: the run's test split is scored by both exports, and image AUROC,
  pixel AUROC and PRO compared.  int8 is *offered* (``--engine onnx-int8`` accepts it)
  only where each of the three stays within ``TOLERANCE`` of the float export's; otherwise, or when
  the test split has no anomalies or masks to measure with, the JSON beside the file
  says why and the engine refuses it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad import jsonfile
from reconad.atomic import atomic_path
from reconad.engines import INT8_FILE, ensure_export, onnx_scorer
from reconad.errors import ConfigError, DataError

__all__ = ["CALIBRATION_IMAGES", "TOLERANCE", "QuantizeResult", "quantize_file", "quantize_run"]

CALIBRATION_IMAGES = 32
#: largest change of image AUROC, pixel AUROC or PRO for which int8 is offered
TOLERANCE = 0.005
CHECKED = ("image_auroc", "pixel_auroc", "pro")


@dataclass
class QuantizeResult:
    path: Path
    offered: bool
    reason: str
    float_metrics: dict[str, float | None]
    int8_metrics: dict[str, float | None]


def _calibration_inputs(det: Any, spec: Any) -> list[np.ndarray]:
    """Model-sized inputs (1, 3, s, s) from the run's held-out normal images (tiles when tiled)."""
    from reconad.tiling import cut_tiles

    train = spec.build("train")
    _, held_out = det._holdout(train, None)
    source = held_out if len(held_out) >= 2 else train
    inputs: list[np.ndarray] = []
    for i in range(len(source)):
        image = source[i].image
        if det.tiling is not None:
            tiles, _ = cut_tiles(image, *det.tiling)
            inputs.extend(t[None].numpy() for t in tiles)
        else:
            inputs.append(image[None].numpy())
        if len(inputs) >= CALIBRATION_IMAGES:
            break
    return [np.ascontiguousarray(x, dtype=np.float32) for x in inputs[:CALIBRATION_IMAGES]]


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
            quant_pre_process(str(float_path), str(pre))
            quantize_static(
                str(pre),
                str(target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
            )


def _test_metrics(det: Any, spec: Any, run: Path, export: Path) -> dict[str, float | None]:
    from reconad.runs import score_test_split, split_metrics

    scorer = onnx_scorer(export)
    test = spec.build("test")
    with tempfile.TemporaryDirectory(dir=run, prefix=".quantize-check-") as tmp:
        tp = score_test_split(det, test, Path(tmp) / "scores.csv", Path(tmp), scorer)
        metrics = split_metrics(det, spec, tp)
    out: dict[str, float | None] = {}
    for key in CHECKED:
        v = metrics.get(key)
        out[key] = None if v is None or not math.isfinite(float(v)) else float(v)
    return out


def _verdict(f: dict[str, float | None], q: dict[str, float | None]) -> tuple[bool, str]:
    missing = [k for k in CHECKED if f[k] is None or q[k] is None]
    if missing:
        return False, (
            f"the test split cannot measure {', '.join(missing)} (it needs anomalies, with masks for the pixel "
            "metrics), so int8's accuracy is unknown"
        )
    gaps = {k: abs(float(f[k]) - float(q[k])) for k in CHECKED}  # type: ignore[arg-type]
    worst = max(gaps, key=lambda k: gaps[k])
    text = ", ".join(f"{k} {f[k]:.4f} -> {q[k]:.4f}" for k in CHECKED)
    if gaps[worst] > TOLERANCE:
        return False, f"{worst} moves by {gaps[worst]:.4f} (> {TOLERANCE}) with int8: {text}"
    return True, f"every metric within {TOLERANCE} of float: {text}"


def quantize_run(run: str | os.PathLike) -> QuantizeResult:
    """Write the run's int8 export and its accuracy check (see the module docstring)."""
    from reconad.runs import align_spec, load_run
    from reconad.serialization import recorded_sha256, sha256_of

    run = Path(run)
    det, spec = load_run(run)
    if spec is None:
        raise DataError(f"{run} does not say what data it was trained on, so it has no held-out images to calibrate on")
    if det.model_.data_kind != "image" or det.model_.export_blocker() is not None:
        raise ConfigError(f"{det.model_name} does not export to ONNX, so it has no int8 export")
    align_spec(spec, det)
    sha = recorded_sha256(run / "model")
    assert sha is not None  # Detector.load checked it
    float_path = ensure_export(run, det, sha)
    target = run / INT8_FILE
    with atomic_path(target) as tmp:
        quantize_file(float_path, tmp, _calibration_inputs(det, spec))
        meta = json.loads(float_path.with_suffix(".json").read_text())
    meta.update({"quantization": _description(), "onnx_sha256": sha256_of(target), "accuracy_check": None})
    jsonfile.write_json(target.with_suffix(".json"), meta)  # not offered until the check below passes
    with torch.inference_mode():
        f, q = _test_metrics(det, spec, run, float_path), _test_metrics(det, spec, run, target)
    offered, reason = _verdict(f, q)
    meta["accuracy_check"] = {"offered": offered, "reason": reason, "tolerance": TOLERANCE, "float": f, "int8": q}
    jsonfile.write_json(target.with_suffix(".json"), meta)
    return QuantizeResult(target, offered, reason, f, q)


def _description() -> dict[str, Any]:
    return {
        "method": "onnxruntime static quantisation, QDQ format",
        "weights": "int8, per output channel",
        "activations": "uint8, per tensor, min-max ranges",
        "calibration": f"up to {CALIBRATION_IMAGES} held-out normal training images of the run (tiles when tiled)",
    }
