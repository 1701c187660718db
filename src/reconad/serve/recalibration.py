"""A served model's threshold and p-values re-fitted from reviewed normal images of the audit
sample, and the false-alarm rate measured on them (no retraining: only the calibration changes).

The audit sample is drawn at random from every scored image, flagged or passed, so the
normals a person finds in it are an exchangeable sample of the line's normal scores.  From
``n`` of them, ``recalibrate`` builds the split-conformal calibration of
``reconad.calibration`` (``Calibration.fit``): the threshold is the ``ceil((n + 1)(1 -
fpr))``-th smallest score and ``p(s) = (1 + #{s_i >= s}) / (n + 1)``; fewer normals than
``normals_needed(fpr)`` resolve no such threshold and are refused (``TooFewNormals``).

``false_alarm_band``: ``k`` of ``n`` reviewed normals flagged, with the two-sided 90 %
Clopper-Pearson (exact binomial) band of the rate they measure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reconad.calibration import Calibration, normals_needed
from reconad.errors import ReconadError

__all__ = ["AUDIT_SOURCE", "FalseAlarmBand", "TooFewNormals", "false_alarm_band", "recalibrate"]

#: what a recalibrated calibration's normal scores are (``Calibration.source``)
AUDIT_SOURCE = "reviewed audit normal"


class TooFewNormals(ReconadError):
    """Fewer reviewed audit normals than the target false-alarm rate needs."""


def recalibrate(normal_scores: Sequence[float], fpr: float) -> Calibration:
    """The conformal calibration for ``fpr`` from reviewed audit normals' scores.

    ``TooFewNormals`` when there are fewer than ``normals_needed(fpr)`` of them (the threshold
    would then be their maximum, whose rate is ``1 / (n + 1)``, not ``fpr``)."""
    scores = np.asarray(normal_scores, dtype=np.float64)
    need = normals_needed(fpr)
    if scores.size < need:
        raise TooFewNormals(
            f"a threshold for false-alarm rate {fpr:g} needs at least {need} reviewed normal images from the "
            f"audit sample, there are {scores.size}: review more audited images"
        )
    return Calibration.fit(scores, fpr=fpr, source=AUDIT_SOURCE)


@dataclass(frozen=True)
class FalseAlarmBand:
    """``flagged`` of ``n`` reviewed normals were above the threshold; ``rate`` and its band."""

    n: int
    flagged: int
    rate: float | None
    low: float
    high: float
    level: float = 0.9


def false_alarm_band(flagged: int, n: int, level: float = 0.9) -> FalseAlarmBand:
    """``flagged / n`` with its two-sided Clopper-Pearson band at ``level`` ([0, 1] when ``n`` is 0)."""
    if n <= 0:
        return FalseAlarmBand(0, 0, None, 0.0, 1.0, level)
    from scipy.stats import beta

    tail = (1.0 - level) / 2.0
    low = 0.0 if flagged == 0 else float(beta.ppf(tail, flagged, n - flagged + 1))
    high = 1.0 if flagged == n else float(beta.ppf(1.0 - tail, flagged + 1, n - flagged))
    return FalseAlarmBand(n, flagged, flagged / n, low, high, level)
