"""Thresholds and p-values from the scores of held-out normal data only.

After training, the detector scores ``n`` normal images it did not train on.  Those
scores alone give

* a **threshold for a target false-alarm rate** ``alpha`` (split-conformal): with the
  scores sorted ascending ``s_(1) <= ... <= s_(n)`` and ``k = floor(alpha (n + 1))``,
  the threshold is ``s_(n-k+1)`` and an image is flagged when its score is *above* it.
  If the new normal image is exchangeable with the held-out ones, its chance of being
  flagged is ``k / (n + 1) <= alpha`` (equal to ``alpha`` up to rounding).  With fewer
  than ``1/alpha - 1`` normals no score reaches that rate; the threshold is then the
  largest normal score and ``expected_fpr`` says what that gives (``1 / (n + 1)``);
* **conformal p-values** ``p(s) = (1 + #{normal scores >= s}) / (n + 1)``, in
  ``(0, 1]``: the share of normal images at least as anomalous as this one.  For a
  normal image ``P(p <= a) <= a`` for every ``a``; flagging ``p <= alpha`` is the same
  decision as ``score > threshold`` above;
* an **F1-optimal threshold** when scores of labelled anomalies are given too.

``threshold_quantile`` (the older setting) is kept: the threshold is then the
interpolated ``q``-quantile of the normal scores (``numpy.quantile``).

``method="kde"`` (adVAE's threshold, Wang et al. 2019, arXiv 1903.00904, §3.5) smooths
the normal scores with a Gaussian kernel density estimate instead, bandwidth by
Silverman's rule ``h = std · (3n/4)^(-1/5)`` (the paper's equation 15 with d = 1; the
authors' notebook uses the robust variant ``0.9 · min(std, IQR / 1.34) · n^(-1/5)``),
and takes the threshold where the estimate's CDF reaches ``1 - fpr`` (``1 - fpr =
quantile`` when a quantile is given); ``expected_fpr`` is then the estimate's tail mass
above the threshold.  It extrapolates beyond the largest normal score, where the
conformal threshold cannot go, but its rate holds only as far as the smooth density
fits the scores.  p-values stay conformal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from reconad.errors import ConfigError, DataError

__all__ = ["Calibration", "conformal_p_values", "threshold_for_fpr", "kde_threshold", "f1_optimal_threshold"]

METHODS = ("conformal", "kde")


def _scores(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise DataError(f"no {what} scores to calibrate on")
    if not np.isfinite(arr).all():
        raise DataError(f"{what} scores contain NaN or infinite values")
    return arr


def conformal_p_values(normal_sorted: np.ndarray, scores: Any) -> np.ndarray:
    """``(1 + #{normal >= s}) / (n + 1)`` for each ``s``; ``normal_sorted`` ascending."""
    s = np.asarray(scores, dtype=np.float64)
    n = normal_sorted.size
    at_least = n - np.searchsorted(normal_sorted, s, side="left")
    return (1.0 + at_least) / (n + 1.0)


def threshold_for_fpr(normal_sorted: np.ndarray, fpr: float) -> tuple[float, float]:
    """Conformal threshold for false-alarm rate ``fpr`` and the rate it is expected to give.

    Flag ``score > threshold``.  Returns ``(threshold, expected_fpr)`` where
    ``expected_fpr = k / (n + 1)``, or ``1 / (n + 1)`` when there are too few normals.
    """
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    n = normal_sorted.size
    k = int(math.floor(fpr * (n + 1) + 1e-9))
    if k < 1:
        return float(normal_sorted[-1]), 1.0 / (n + 1)
    k = min(k, n)
    return float(normal_sorted[n - k]), k / (n + 1.0)


def silverman_bandwidth(scores: np.ndarray) -> float:
    """Silverman's rule of thumb for a 1-D Gaussian kernel: ``std · (3n/4)^(-1/5)``."""
    n = scores.size
    return float(np.std(scores, ddof=1 if n > 1 else 0)) * (3.0 * n / 4.0) ** -0.2


def kde_threshold(scores: Any, fpr: float) -> tuple[float, float]:
    """Threshold where a Gaussian KDE of ``scores`` has CDF ``1 - fpr``, and its tail mass there.

    Flag ``score > threshold``.  The CDF, ``mean_i Phi((t - s_i) / h)``, is monotone, so the
    threshold is found by bracketing root search; with one distinct score (zero bandwidth)
    the threshold is that score and the tail mass 0.
    """
    from scipy.optimize import brentq
    from scipy.special import ndtr

    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    s = _scores(scores, "normal")
    h = silverman_bandwidth(s)
    if not h > 0:
        return float(s.max()), 0.0

    def tail(t: float) -> float:
        return float(np.mean(ndtr((s - t) / h))) - fpr

    lo, hi = float(s.min()) - 10.0 * h, float(s.max()) + 10.0 * h
    thr = float(brentq(tail, lo, hi, xtol=1e-12 * max(1.0, abs(hi)), maxiter=200))
    return thr, float(np.mean(ndtr((s - thr) / h)))


def f1_optimal_threshold(normal: Any, anomalous: Any) -> tuple[float, float]:
    """Threshold (flag ``score > threshold``) maximising F1 on labelled scores, and that F1.

    Only cuts between two different scores are considered; the threshold is the
    midpoint of the lowest flagged and the highest unflagged score.
    """
    neg, pos = _scores(normal, "normal"), _scores(anomalous, "anomalous")
    s = np.concatenate([neg, pos])
    y = np.concatenate([np.zeros(neg.size), np.ones(pos.size)])
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    flagged = np.arange(1, s.size + 1)
    f1 = 2 * tp / (flagged + pos.size)
    valid = np.ones(s.size, dtype=bool)
    valid[:-1] = s[:-1] > s[1:]  # never cut inside a run of equal scores
    f1 = np.where(valid, f1, -1.0)
    i = int(np.argmax(f1))
    thr = (s[i] + s[i + 1]) / 2 if i + 1 < s.size else float(np.nextafter(s[i], -np.inf))
    return float(thr), float(f1[i])


def _fpr_threshold(normal_sorted: np.ndarray, fpr: float, method: str) -> tuple[float, float]:
    """(threshold, expected false-alarm rate) for ``fpr`` by ``method`` (conformal or kde)."""
    if method == "kde":
        return kde_threshold(normal_sorted, fpr)
    return threshold_for_fpr(normal_sorted, fpr)


@dataclass
class Calibration:
    """A threshold and the normal scores behind it (what a saved model carries).

    ``basis`` says how the threshold was chosen: ``"fpr=0.01"``, ``"quantile=0.99"`` or
    ``"f1"`` (labelled anomalies), prefixed ``"kde "`` when ``method`` is ``"kde"`` (a
    kernel density estimate of the normal scores, see the module docstring) rather than
    ``"conformal"``.  ``source``: which normals were scored (``"held-out normal"``, or
    ``"training"`` when nothing was held out: optimistic).
    """

    normal_scores: np.ndarray
    threshold: float
    basis: str
    fpr: float | None = None
    quantile: float | None = None
    expected_fpr: float | None = None
    f1_threshold: float | None = None
    f1: float | None = None
    source: str = "held-out normal"
    method: str = "conformal"

    @classmethod
    def fit(
        cls,
        normal_scores: Any,
        fpr: float | None = None,
        quantile: float | None = None,
        anomaly_scores: Any = None,
        use_f1: bool = False,
        source: str = "held-out normal",
        method: str = "conformal",
    ) -> Calibration:
        """Calibrate on normal scores; ``fpr`` wins over ``quantile``; ``use_f1`` picks the F1 threshold;
        ``method``: ``conformal`` (order statistics) or ``kde`` (a Gaussian KDE's quantile)."""
        if method not in METHODS:
            raise ConfigError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
        normal = np.sort(_scores(normal_scores, "normal"))
        f1_thr = f1 = None
        if anomaly_scores is not None and np.asarray(anomaly_scores).size:
            f1_thr, f1 = f1_optimal_threshold(normal, anomaly_scores)
        elif use_f1:
            raise DataError("an F1-optimal threshold needs scores of labelled anomalies")
        expected = None
        if fpr is not None:
            thr, expected = _fpr_threshold(normal, float(fpr), method)
            basis = f"fpr={float(fpr):g}"
        elif quantile is not None:
            if not 0 < quantile <= 1:
                raise ConfigError(f"quantile must be in (0, 1], got {quantile}")
            if method == "kde":
                if quantile == 1:
                    raise ConfigError("the kde threshold needs a quantile below 1 (or an fpr)")
                thr, expected = kde_threshold(normal, 1.0 - float(quantile))
            else:
                thr = float(np.quantile(normal, float(quantile)))
                expected = float(np.mean(normal > thr)) * normal.size / (normal.size + 1.0)
            basis = f"quantile={float(quantile):g}"
        elif not use_f1:
            raise ConfigError("give fpr, quantile or anomaly scores with use_f1=True")
        if use_f1:
            thr, basis = f1_thr, "f1"  # type: ignore[assignment]
            expected = float(np.mean(normal > thr)) * normal.size / (normal.size + 1.0)
        return cls(
            normal_scores=normal,
            threshold=float(thr),
            basis=basis if method == "conformal" or basis == "f1" else f"kde {basis}",
            fpr=None if fpr is None else float(fpr),
            quantile=None if quantile is None else float(quantile),
            expected_fpr=expected,
            f1_threshold=f1_thr,
            f1=f1,
            source=source,
            method=method,
        )

    @property
    def n(self) -> int:
        return int(self.normal_scores.size)

    def p_values(self, scores: Any) -> np.ndarray:
        """Conformal p-value of each score (small = unusual for a normal image)."""
        return conformal_p_values(self.normal_scores, scores)

    def threshold_for_fpr(self, fpr: float) -> float:
        """The threshold (by this calibration's method) for another target false-alarm rate."""
        return _fpr_threshold(self.normal_scores, fpr, self.method)[0]

    def predict(self, scores: Any) -> np.ndarray:
        return (np.asarray(scores) > self.threshold).astype(int)

    def describe(self) -> str:
        """One line for people: the threshold and what it means."""
        text = f"threshold {self.threshold:.4g} ({self.basis}, from {self.n} {self.source} scores"
        if self.expected_fpr is not None:
            text += f"; expected false-alarm rate {100 * self.expected_fpr:.2g}%"
        return text + ")"

    def to_dict(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "basis": self.basis,
            "fpr": self.fpr,
            "quantile": self.quantile,
            "expected_fpr": self.expected_fpr,
            "f1_threshold": self.f1_threshold,
            "f1": self.f1,
            "source": self.source,
            "method": self.method,
            "n_normal": self.n,
            "normal_scores": [float(s) for s in self.normal_scores],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        try:
            normal = np.sort(_scores(d["normal_scores"], "normal"))
            return cls(
                normal_scores=normal,
                threshold=float(d["threshold"]),
                basis=str(d["basis"]),
                fpr=d.get("fpr"),
                quantile=d.get("quantile"),
                expected_fpr=d.get("expected_fpr"),
                f1_threshold=d.get("f1_threshold"),
                f1=d.get("f1"),
                source=str(d.get("source", "held-out normal")),
                method=str(d.get("method", "conformal")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"bad calibration record: {exc}") from exc


def p_values_or_nan(det: Any, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values of ``scores`` under ``det.calibration_`` (nan for a model saved
    without a calibration)."""
    cal = det.calibration_
    return cal.p_values(scores) if cal is not None else np.full(len(scores), np.nan)
