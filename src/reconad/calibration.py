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
* the **expected false-alarm rate** of any threshold ``t``, one formula for every basis
  (``expected_fpr``): ``(1 + #{normal scores > t}) / (n + 1)``, the chance that a new
  exchangeable normal score lies above ``t`` when ``t`` is one of the normal scores, and
  at most that when ``t`` lies between two.  ``n`` normals resolve no rate below
  ``1 / (n + 1)`` (``fpr_resolution``): a target below it (``fpr``, or ``1 - quantile``)
  is reported as not resolved, with how many normals it needs, never as a precise rate;
* **conformal p-values** ``p(s) = (1 + #{normal scores >= s}) / (n + 1)``, in
  ``(0, 1]``: the share of normal images at least as anomalous as this one.  For a
  normal image ``P(p <= a) <= a`` for every ``a``; flagging ``p <= alpha`` is the same
  decision as ``score > threshold`` above;
* an **F1-optimal threshold** when scores of labelled anomalies are given too.

How far one calibration's realised rate can fall from its target: conditional on the
``n`` calibration scores, the chance that a new normal score lies above ``s_(n-k+1)`` is
``1 - F(s_(n-k+1))``, which follows a ``Beta(k, n + 1 - k)`` distribution (mean ``k / (n
+ 1)``); ``realised_rate_band`` gives its central 90 % interval, what "5 % target: 60
images give 2-9 % on new parts" means.  The band narrows only as ``n`` grows.

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
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reconad.errors import ConfigError, DataError, ReconadError, ScoringError

__all__ = [
    "Calibration",
    "calibrate_normal_scores",
    "conformal_p_values",
    "expected_fpr",
    "f1_optimal_threshold",
    "finite_scores",
    "fpr_resolution",
    "kde_threshold",
    "normals_needed",
    "calibration_split_size",
    "images_needed",
    "realised_rate_band",
    "require_resolvable",
    "require_split_resolvable",
    "threshold_for_fpr",
    "default_fpr",
    "default_target_note",
    "measured_note",
]

#: the default target false-alarm rate, and the tighter one used where the normals resolve it
DEFAULT_FPR, FINE_FPR = 0.05, 0.01
#: tighter targets a diagnostic names the image count for (the first below the target that
#: the scores do not resolve)
TIGHTER_TARGETS = (0.1, 0.05, 0.01, 0.005, 0.001)
#: the source name of a calibration split's scores (``Detector``'s default calibration)
SET_ASIDE = "set-aside normal"

METHODS = ("conformal", "kde")


def _pct(rate: float) -> str:
    return f"{100 * rate:.2g}%"


def _scores(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    if arr.size == 0:
        raise DataError(f"no {what} scores to calibrate on")
    if not np.isfinite(arr).all():
        raise DataError(f"{what} scores contain NaN or infinite values")
    return arr


def finite_scores(scores: Any, names: Sequence[str] | None = None, why: str = "") -> np.ndarray:
    """``scores`` as float64, or a ``ScoringError`` naming the first NaN / infinite one.

    A NaN compares below every threshold and above no normal score, so unchecked it would
    pass as "normal" with the smallest p-value.  ``names``: one per score (image paths,
    ``array[i]``, ``row i``); ``why`` is added to the message (e.g. what gave the score).
    """
    s = np.asarray(scores, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(s.ravel()))
    if bad.size:
        i = int(bad[0])
        name = names[i] if names is not None and i < len(names) else f"score {i}"
        kind = "NaN" if np.isnan(s.ravel()[i]) else "infinite"
        more = f" ({bad.size - 1} more in the batch)" if bad.size > 1 else ""
        raise ScoringError(f"{name}: {kind} score{why}{more}; no threshold or p-value applies to it")
    return s


def conformal_p_values(normal_sorted: np.ndarray, scores: Any) -> np.ndarray:
    """``(1 + #{normal >= s}) / (n + 1)`` for each ``s``; ``normal_sorted`` ascending."""
    s = finite_scores(scores)
    n = normal_sorted.size
    at_least = n - np.searchsorted(normal_sorted, s, side="left")
    return (1.0 + at_least) / (n + 1.0)


def fpr_resolution(n: int) -> float:
    """``1 / (n + 1)``: the smallest false-alarm rate ``n`` normal scores can resolve."""
    return 1.0 / (int(n) + 1.0)


def normals_needed(rate: float) -> int:
    """The fewest normal scores that resolve ``rate`` (``n + 1 >= 1 / rate``)."""
    return max(1, math.ceil(1.0 / rate - 1e-9) - 1)


def require_resolvable(n: int, fpr: float, what: str = "normal images") -> None:
    """``DataError`` in one line when ``n`` scores cannot resolve ``fpr`` (``fpr < 1/(n+1)``),
    saying how many it needs; never a silently different rate."""
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    if fpr < fpr_resolution(n) - 1e-12:
        raise DataError(
            f"fpr {fpr:g} needs at least {normals_needed(fpr)} {what}, got {n}: "
            f"give more or a target of at least {_pct(fpr_resolution(n))}"
        )


#: the fewest images a calibration split leaves to train on
MIN_TRAIN = 10


def calibration_split_size(n: int, fraction: float, fpr: float | None = None) -> int:
    """How many of ``n`` normal images the default calibration (``split``) sets aside:
    ``ceil(fraction n)``, at least what ``fpr`` needs (5 % when none is given), and never
    so many that fewer than ``MIN_TRAIN`` are left to train on (0 when none can be spared)."""
    need = normals_needed(DEFAULT_FPR if fpr is None else fpr)
    want = max(math.ceil(fraction * n - 1e-9), need)
    return max(0, min(want, n - MIN_TRAIN))


def images_needed(fpr: float) -> int:
    """The fewest normal images with which a calibration split resolves ``fpr``: what it
    calibrates on (``normals_needed``) and ``MIN_TRAIN`` to train on."""
    return normals_needed(fpr) + MIN_TRAIN


def require_split_resolvable(n: int, fpr: float) -> None:
    """``DataError`` in one line when a calibration split of ``n`` normal images cannot
    resolve ``fpr``, saying how many images it needs."""
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    if n < images_needed(fpr):
        raise DataError(
            f"fpr {fpr:g} needs at least {images_needed(fpr)} normal images ({normals_needed(fpr)} set aside "
            f"to calibrate, {MIN_TRAIN} to train), got {n}: give more images or a target of at least "
            f"{_pct(fpr_resolution(max(n - MIN_TRAIN, 1)))}"
        )


def default_fpr(n: int) -> float:
    """The target used when none is given: 1 % where ``n`` calibration scores resolve it,
    else 5 %."""
    return FINE_FPR if fpr_resolution(n) <= FINE_FPR + 1e-12 else DEFAULT_FPR


def realised_rate_band(n: int, fpr: float, level: float = 0.9, n_new: int | None = None) -> tuple[float, float]:
    """The central ``level`` interval of the rate a conformal threshold for ``fpr`` from
    ``n`` calibration scores realises on new normal data: ``Beta(k, n + 1 - k)``,
    ``k = floor(fpr (n + 1))`` (``k = 1`` when ``n`` cannot resolve ``fpr``).  With
    ``n_new``: the band of the share flagged among that many new normal images (the
    beta-binomial, which adds the count's own noise)."""
    from scipy.stats import beta, betabinom

    k = max(1, min(int(math.floor(fpr * (n + 1) + 1e-9)), n))
    q = [(1 - level) / 2, (1 + level) / 2]
    if n_new:
        lo, hi = betabinom.ppf(q, int(n_new), k, n + 1 - k) / int(n_new)
    else:
        lo, hi = beta.ppf(q, k, n + 1 - k)
    return float(lo), float(hi)


def default_target_note(cal: Calibration) -> str:
    """One line when the target rate was the default rather than asked for ("" otherwise):
    which rate, and why not 1 %."""
    if not cal.default_target or cal.target_fpr is None:
        return ""
    if cal.target_fpr <= FINE_FPR:
        return f"fpr not given: {_pct(cal.target_fpr)} ({cal.n} {cal.source} scores resolve it)"
    line = (
        f"fpr not given: {_pct(cal.target_fpr)}, because {cal.n} {cal.source} scores cannot resolve "
        f"{_pct(FINE_FPR)} (it needs {normals_needed(FINE_FPR)}"
    )
    if cal.source == SET_ASIDE:
        line += f": --fpr {FINE_FPR:g} with at least {images_needed(FINE_FPR)} normal images"
    return line + ")"


def measured_note(cal: Calibration, flagged: int, normals: int) -> str:
    """The expected rate and its 90 % band beside the rate measured on ``normals`` test
    normals (``flagged`` of them above the threshold), in one line."""
    target = cal.target_fpr
    measured = f"measured on the test split: {_pct(flagged / normals)} ({flagged} of {normals} normal images)"
    if target is None:
        return measured
    lo, hi = realised_rate_band(cal.n, target, n_new=normals)
    inside = "inside" if lo - 1e-12 <= flagged / normals <= hi + 1e-12 else "outside"
    return (
        f"false alarms: {_pct(target)} target, expected {_pct(lo)}-{_pct(hi)} on {normals} new normal images "
        f"(90 % band from {cal.n} calibration scores); {measured}, {inside} the band"
    )


def expected_fpr(normal_sorted: np.ndarray, threshold: float, method: str = "conformal") -> float:
    """The false-alarm rate ``score > threshold`` is expected to give on new normal data.

    The one place expected rates are computed.  ``conformal``: ``(1 + #{normal >
    threshold}) / (n + 1)``, exact (for exchangeable, untied scores) when the threshold
    is a normal score, an upper bound between two.  ``kde``: the kernel density
    estimate's tail mass above the threshold (the conformal rate when all scores are
    equal and the estimate has no width).
    """
    s = np.asarray(normal_sorted, dtype=np.float64)
    if method == "kde":
        h = silverman_bandwidth(s)
        if h > 0:
            from scipy.special import ndtr

            return float(np.mean(ndtr((s - threshold) / h)))
    above = s.size - np.searchsorted(s, threshold, side="right")
    return (1.0 + float(above)) / (s.size + 1.0)


def threshold_for_fpr(normal_sorted: np.ndarray, fpr: float) -> tuple[float, float]:
    """Conformal threshold for false-alarm rate ``fpr`` and the rate it is expected to give.

    Flag ``score > threshold``.  Returns ``(threshold, expected_fpr)``: ``k / (n + 1)``
    for untied scores, ``1 / (n + 1)`` when there are too few normals (``expected_fpr``).
    """
    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    n = normal_sorted.size
    k = min(int(math.floor(fpr * (n + 1) + 1e-9)), n)
    thr = float(normal_sorted[-1] if k < 1 else normal_sorted[n - k])
    return thr, expected_fpr(normal_sorted, thr)


def silverman_bandwidth(scores: np.ndarray) -> float:
    """Silverman's rule of thumb for a 1-D Gaussian kernel: ``std · (3n/4)^(-1/5)``."""
    n = scores.size
    return float(np.std(scores, ddof=1 if n > 1 else 0)) * (3.0 * n / 4.0) ** -0.2


def kde_threshold(scores: Any, fpr: float) -> tuple[float, float]:
    """Threshold where a Gaussian KDE of ``scores`` has CDF ``1 - fpr``, and its tail mass there.

    Flag ``score > threshold``.  The CDF, ``mean_i Phi((t - s_i) / h)``, is monotone, so the
    threshold is found by bracketing root search; with one distinct score (zero bandwidth)
    the threshold is that score and its rate the conformal one (``expected_fpr``).
    """
    from scipy.optimize import brentq
    from scipy.special import ndtr

    if not 0 < fpr < 1:
        raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
    s = np.sort(_scores(scores, "normal"))
    h = silverman_bandwidth(s)
    if not h > 0:
        return float(s.max()), expected_fpr(s, float(s.max()), "kde")

    def tail(t: float) -> float:
        return float(np.mean(ndtr((s - t) / h))) - fpr

    lo, hi = float(s.min()) - 10.0 * h, float(s.max()) + 10.0 * h
    thr = float(brentq(tail, lo, hi, xtol=1e-12 * max(1.0, abs(hi)), maxiter=200))
    return thr, expected_fpr(s, thr, "kde")


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
    ``"conformal"``.  ``source``: which normals were scored (``"set-aside normal"``: the
    default calibration split, which nothing of the model saw; ``"held-out normal"``, or
    ``"training"`` when nothing was held out: optimistic).  ``default_target``: the
    target was ``default_fpr``'s, not one asked for.  ``expected_fpr`` is always
    computed from the scores and the threshold (``expected_fpr()``), also for records
    saved by older versions; ``resolved`` says whether the normals can resolve the rate
    asked for at all.
    """

    normal_scores: np.ndarray
    threshold: float
    basis: str
    fpr: float | None = None
    quantile: float | None = None
    f1_threshold: float | None = None
    f1: float | None = None
    source: str = "held-out normal"
    method: str = "conformal"
    #: whether the target rate was the default (``default_fpr``), not one asked for
    default_target: bool = False
    expected_fpr: float = field(init=False)

    def __post_init__(self) -> None:
        self.normal_scores = np.sort(_scores(self.normal_scores, "normal"))
        self.expected_fpr = expected_fpr(self.normal_scores, float(self.threshold), self.method)

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
        default_target: bool = False,
    ) -> Calibration:
        """Calibrate on normal scores; ``fpr`` wins over ``quantile``; ``use_f1`` picks the F1 threshold;
        ``method``: ``conformal`` (order statistics) or ``kde`` (a Gaussian KDE's quantile).
        Neither ``fpr`` nor ``quantile`` nor ``use_f1``: ``default_fpr(n)`` (5 %, or 1 % where
        the scores resolve it)."""
        if method not in METHODS:
            raise ConfigError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
        normal = np.sort(_scores(normal_scores, "normal"))
        if fpr is None and quantile is None and not use_f1:
            fpr, default_target = default_fpr(normal.size), True
        f1_thr = f1 = None
        if anomaly_scores is not None and np.asarray(anomaly_scores).size:
            f1_thr, f1 = f1_optimal_threshold(normal, anomaly_scores)
        elif use_f1:
            raise DataError("an F1-optimal threshold needs scores of labelled anomalies")
        if fpr is not None:
            thr = _fpr_threshold(normal, float(fpr), method)[0]
            basis = f"fpr={float(fpr):g}"
        elif quantile is not None:
            if not 0 < quantile <= 1:
                raise ConfigError(f"quantile must be in (0, 1], got {quantile}")
            if method == "kde":
                if quantile == 1:
                    raise ConfigError("the kde threshold needs a quantile below 1 (or an fpr)")
                thr = kde_threshold(normal, 1.0 - float(quantile))[0]
            else:
                thr = float(np.quantile(normal, float(quantile)))
            basis = f"quantile={float(quantile):g}"
        if use_f1:
            assert f1_thr is not None  # use_f1 without anomaly scores raised above
            thr, basis = f1_thr, "f1"
        return cls(
            normal_scores=normal,
            threshold=float(thr),
            basis=basis if method == "conformal" or basis == "f1" else f"kde {basis}",
            fpr=None if fpr is None else float(fpr),
            quantile=None if quantile is None else float(quantile),
            f1_threshold=f1_thr,
            f1=f1,
            source=source,
            method=method,
            default_target=default_target and basis != "f1",
        )

    @property
    def n(self) -> int:
        return int(self.normal_scores.size)

    @property
    def target_fpr(self) -> float | None:
        """The false-alarm rate asked for: ``fpr``, ``1 - quantile``, or None (F1 threshold)."""
        if self.basis == "f1":
            return None
        if self.fpr is not None:
            return float(self.fpr)
        return None if self.quantile is None else 1.0 - float(self.quantile)

    @property
    def resolution(self) -> float:
        """The smallest false-alarm rate these normal scores resolve: ``1 / (n + 1)``."""
        return fpr_resolution(self.n)

    @property
    def resolved(self) -> bool:
        """Whether the normals resolve the rate: the target is at least ``resolution``
        (without a target: some normal score lies above the threshold)."""
        target = self.target_fpr
        if target is None:
            return bool(self.threshold < self.normal_scores[-1])
        return target >= self.resolution - 1e-12

    def p_values(self, scores: Any) -> np.ndarray:
        """Conformal p-value of each score (small = unusual for a normal image)."""
        return conformal_p_values(self.normal_scores, scores)

    def threshold_for_fpr(self, fpr: float) -> float:
        """The threshold (by this calibration's method) for another target false-alarm rate."""
        return _fpr_threshold(self.normal_scores, fpr, self.method)[0]

    def predict(self, scores: Any) -> np.ndarray:
        """1 above the threshold; a NaN / infinite score is a ``ScoringError``, not a 0."""
        return (finite_scores(scores) > self.threshold).astype(int)

    def rate_note(self) -> str:
        """The expected false-alarm rate in words, saying so when the normals cannot resolve it."""
        conformal, target = self.method == "conformal", self.target_fpr
        rate = f"at most {_pct(self.expected_fpr)}" if conformal else f"{_pct(self.expected_fpr)} by the kde"
        if self.resolved:
            return f"expected false-alarm rate {rate}"
        if not conformal:
            rate += ", an extrapolation"
        elif target:
            rate += f" on average, not the {_pct(target)} asked"
        need = f" ({_pct(target)} needs at least {normals_needed(target)})" if target else ""
        return (
            f"expected false-alarm rate not resolved ({rate}): too few {self.source} scores "
            f"({self.n}) to resolve a rate below {_pct(self.resolution)}{need}"
        )

    @property
    def band(self) -> tuple[float, float] | None:
        """The 90 % band of the rate this threshold realises on new normal data
        (``realised_rate_band``); None without a target rate."""
        target = self.target_fpr
        return None if target is None else realised_rate_band(self.n, target)

    def expectation_note(self) -> str:
        """What to expect on new parts, in one line: the target, the 90 % band its
        calibration scores give, and how many a tighter target needs."""
        target, band = self.target_fpr, self.band
        if target is None or band is None:
            return f"threshold chosen by {self.basis} on labelled anomalies: no target false-alarm rate"
        chosen = " (the default)" if self.default_target else ""
        line = (
            f"{_pct(target)} target{chosen}: {self.n} {self.source} scores give "
            f"{_pct(band[0])}-{_pct(band[1])} on new normal parts (90 % band)"
        )
        tighter = next((t for t in TIGHTER_TARGETS if t < target - 1e-12 and normals_needed(t) > self.n), None)
        if tighter is not None:
            line += f"; {_pct(tighter)} needs {normals_needed(tighter)} such scores"
            if self.source == SET_ASIDE:
                line += f" (--fpr {tighter:g} with at least {images_needed(tighter)} normal images)"
        return line

    def describe(self) -> str:
        """One line for people: the threshold and what it means."""
        return f"threshold {self.threshold:.4g} ({self.basis}, from {self.n} {self.source} scores; {self.rate_note()})"

    def to_dict(self) -> dict[str, Any]:
        target = self.target_fpr
        return {
            "threshold": self.threshold,
            "basis": self.basis,
            "fpr": self.fpr,
            "quantile": self.quantile,
            "expected_fpr": self.expected_fpr,
            "expected_fpr_resolved": self.resolved,
            "fpr_resolution": self.resolution,
            "normals_needed": normals_needed(target) if target else None,
            "expected_fpr_note": self.rate_note(),
            "f1_threshold": self.f1_threshold,
            "f1": self.f1,
            "source": self.source,
            "method": self.method,
            "default_target": self.default_target,
            "realised_rate_band": None if self.band is None else list(self.band),
            "expectation_note": self.expectation_note(),
            "n_normal": self.n,
            "normal_scores": [float(s) for s in self.normal_scores],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        """A saved record; the expected rate and its resolution are recomputed, not read."""
        try:
            return cls(
                normal_scores=np.asarray(d["normal_scores"], dtype=np.float64),
                threshold=float(d["threshold"]),
                basis=str(d["basis"]),
                fpr=d.get("fpr"),
                quantile=d.get("quantile"),
                f1_threshold=d.get("f1_threshold"),
                f1=d.get("f1"),
                source=str(d.get("source", "held-out normal")),
                method=str(d.get("method", "conformal")),
                default_target=bool(d.get("default_target", False)),
            )
        except ReconadError:  # the record's own checks: already one line
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"bad calibration record: {exc}") from exc


def calibrate_normal_scores(scores: Any, fpr: float, source: str = "reviewed normal") -> Calibration:
    """Threshold and p-value reference from an array of normal scores at target ``fpr``:
    the conformal ``Calibration`` (flag ``score > threshold``; ``p_values`` against these
    scores).  A target the scores cannot resolve (``fpr < 1/(n+1)``) is a one-line
    ``DataError`` saying how many it needs; NaN / infinite scores are a ``DataError``."""
    arr = _scores(scores, source)
    require_resolvable(arr.size, float(fpr), f"{source} images")
    return Calibration.fit(arr, fpr=float(fpr), source=source)
