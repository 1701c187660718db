"""The audit sample on the line: which scored images a person reviews, the calibration a
served model scores with, and the reviewed defects kept for the next training.

* ``AuditSampler``: a seeded Bernoulli draw (``--audit-share``, ``--audit-seed``) over
  every scored image, flagged or passed alike.  A sample of passed images alone would hold
  no false alarm (they are the flagged normals), so neither the rate nor a threshold
  fitted on it could be right; drawn from every image, the normals a person finds in it
  are an unbiased sample of the line's normal scores.
* ``score_kind``: what a score's scale depends on besides the model file (the int8 export
  scores differently from the float engines, a tiling differently from whole images):
  only audit normals of the same kind calibrate a model.
* ``with_calibration``: the served model with another calibration (threshold and
  p-values), the same engine: no retraining.
* ``save_defect`` / ``drop_defect``: a reviewed defect's image in the folder
  ``reconad train --labelled-anomalies DIR`` reads (every image in it is a labelled anomaly).
"""

from __future__ import annotations

import io
import random
from dataclasses import replace
from pathlib import Path

from reconad.atomic import write_bytes
from reconad.calibration import Calibration
from reconad.serve.engines import ServedModel

__all__ = ["AuditSampler", "score_kind", "with_calibration", "save_defect", "drop_defect"]

#: Pillow's format -> the file extension the labelled-anomalies folder reads
_EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "BMP": ".bmp", "TIFF": ".tiff"}


class AuditSampler:
    """Draws each scored image into the audit sample with chance ``share`` (a seeded stream)."""

    def __init__(self, share: float, seed: int | None) -> None:
        self.share = float(share)
        self._rng = random.Random(seed)

    @property
    def on(self) -> bool:
        return self.share > 0

    def draw(self, n: int) -> list[bool]:
        """One independent draw per image (all False when auditing is off)."""
        if not self.on:
            return [False] * n
        return [self._rng.random() < self.share for _ in range(n)]


def score_kind(model: ServedModel) -> str:
    """``float`` or ``int8``, with the tiling when the model scores by tiles."""
    kind = "int8" if model.engine.name == "onnx-int8" else "float"
    return kind if model.tiling is None else f"{kind} tiles {model.tiling.tile}/{model.tiling.overlap}"


def with_calibration(model: ServedModel, calibration: Calibration | None, version: int) -> ServedModel:
    """``model`` comparing its scores with ``calibration`` (None: the run's own, from ``model``)."""
    pipe = model.pipeline
    if calibration is not None:
        calibrated = replace(pipe.calibrated, threshold=float(calibration.threshold), calibration=calibration, note="")
        pipe = replace(pipe, calibrated=calibrated)
    described = pipe.describe()
    keys = ("threshold", "threshold_basis", "expected_false_alarm_rate", "calibration", "calibration_note")
    info = {**model.info, **{k: described[k] for k in keys}, "calibration_version": version}
    return replace(model, pipeline=pipe, info=info)


def _image_file(data: bytes) -> tuple[bytes, str]:
    """The upload as it was when the folder reader takes its format, else re-encoded as PNG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        ext = _EXTENSIONS.get(str(im.format))
        if ext is not None:
            return data, ext
        buf = io.BytesIO()
        im.convert("RGB").save(buf, format="PNG")
        return buf.getvalue(), ".png"


def save_defect(folder: Path, result_id: str, data: bytes) -> Path:
    """Write a reviewed defect's image as ``folder/<result id>.<ext>`` (atomically); its path."""
    content, ext = _image_file(data)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{result_id}{ext}"
    write_bytes(path, content)
    return path


def drop_defect(saved_as: str | None) -> None:
    """Remove a saved defect image (a review changed to normal)."""
    if saved_as:
        Path(saved_as).unlink(missing_ok=True)
