"""What a pipeline's scores are compared with: the threshold, the p-values' normal scores,
and which engine and tiling they were learnt under.

The float engines (PyTorch, ONNX Runtime, OpenVINO) give the same scores to within
1e-5 of their range and share the run's calibration; the int8 export gives other scores
and carries its own (``reconad.quantize`` scores the held-out normals with it).  Under
another tiling than the run was calibrated with, scores differ in kind: no verdict and
no p-value are given (``dropped``), never a threshold applied to scores of another kind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from reconad.calibration import Calibration
from reconad.errors import DataError

__all__ = ["Calibrated", "calibration_from_config"]


def calibration_from_config(cfg: dict[str, Any], quantile: float) -> Calibration | None:
    """The calibration a saved model records; for a model saved before calibration records,
    one rebuilt from its held-out scores and threshold (None where neither exists).
    DataError (from ``Calibration``) for a damaged record."""
    threshold, vs = cfg.get("threshold"), cfg.get("val_scores")
    if cfg.get("calibration"):
        return Calibration.from_dict(cfg["calibration"])
    if threshold is not None and vs is not None and len(vs):
        scores = np.sort(np.asarray(vs, dtype=np.float64))
        return Calibration(scores, float(threshold), f"quantile={quantile:g}", quantile=quantile)
    return None


@dataclass(frozen=True)
class Calibrated:
    """The threshold and calibration scores are compared with (both None: none recorded, or
    dropped under another tiling; ``note`` then says why)."""

    threshold: float | None
    calibration: Calibration | None
    #: the engine whose scores the calibration came from ("float": any float engine)
    engine: str = "float"
    #: (tile size, overlap) the scores were calibrated under; None for whole images
    tiling: tuple[int, int] | None = None
    note: str = ""

    def p_values(self, scores: Any) -> np.ndarray:
        """Conformal p-values (nan for every score when there is no calibration)."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if self.calibration is None:
            return np.full(len(scores), np.nan)
        return np.asarray(self.calibration.p_values(scores), dtype=np.float64)

    def labels(self, scores: Any) -> np.ndarray | None:
        """1 above the threshold, 0 at or below it; None when there is no threshold."""
        if self.threshold is None:
            return None
        return (np.asarray(scores, dtype=np.float64) > self.threshold).astype(int)

    def with_own(self, calibration: dict[str, Any] | None, engine: str) -> Calibrated:
        """This calibration replaced by an export's own (``Calibration.to_dict`` form), for an
        engine whose scores differ from float's (int8); unchanged where either is missing."""
        if not calibration or self.calibration is None:
            return self
        own = Calibration.from_dict(calibration)
        return replace(self, threshold=float(own.threshold), calibration=own, engine=engine)

    def require_threshold(self) -> float:
        if self.threshold is None:
            raise DataError(self.note or "no threshold: this model was saved without one; calibrate() it first")
        return float(self.threshold)

    @property
    def color_range(self) -> tuple[float, float]:
        """Heat maps' colour range: 0 (a typical normal pixel) to the image threshold."""
        vmax = self.threshold if self.threshold is not None and self.threshold > 0 else 1.0
        return 0.0, float(vmax)

    def dropped(self, note: str) -> Calibrated:
        """This calibration without its threshold and p-values (scores of another kind)."""
        return replace(self, threshold=None, calibration=None, note=note)

    def fingerprint(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "engine": self.engine, "tiling": self.tiling}
