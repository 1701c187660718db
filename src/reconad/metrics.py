"""Image- and pixel-level metrics for anomaly detection and localization.

Conventions shared by every function here:

* ``labels`` are per-image ground truth (1 = anomaly, 0 = normal) and ``scores`` per-image
  anomaly scores, higher = more anomalous.
* ``masks`` are per-pixel ground truth of shape (N, H, W), (N, 1, H, W) or a single (H, W);
  a pixel is anomalous where its mask value is > 0.5 (so {0, 1} and {0, 255} masks both
  work). ``maps`` are anomaly maps of the same shape, higher = more anomalous.
* Inputs may be numpy arrays, (nested) lists or torch tensors on any device.
* An undefined metric is ``float('nan')`` rather than an error: the image metrics and pixel
  AUROC are nan when only one class is present, PRO is nan when the masks hold no anomalous
  region or no normal pixel. ``reconad test`` can then still print every metric that is
  defined (e.g. on a split without anomalies); ``undefined_reasons`` says why each nan
  is one, for the reports that write ``null`` in its place. Malformed input (shape mismatch, labels other
  than 0/1, NaN scores or maps) raises ``ValueError``.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

__all__ = ["image_auroc", "image_aupr", "f1_max", "pixel_auroc", "pro_score", "evaluate", "undefined_reasons"]

_NAN = float("nan")
# 8-connectivity for the ground-truth regions of PRO.
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# Normal-pixel scores drawn to place the PRO thresholds (placement only, see pro_score).
_PRO_QUANTILE_SAMPLE = 1_000_000


# --------------------------------------------------------------------------- inputs


def _to_numpy(x: Any) -> np.ndarray:
    """A numpy view/copy of an array, list or torch tensor (detached, moved to CPU)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def _image_inputs(labels: Any, scores: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Validated (labels as int8, scores as float64); None when only one class is present."""
    y = _to_numpy(labels).reshape(-1)
    s = _to_numpy(scores).reshape(-1).astype(np.float64)
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length: {y.size} vs {s.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (normal) or 1 (anomaly)")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    y = y.astype(np.int8)
    if y.size == 0 or y.min() == y.max():
        return None
    return y, s


def _as_stack(x: np.ndarray, name: str) -> np.ndarray:
    """(N, H, W) from (H, W), (N, H, W) or (N, 1, H, W)."""
    if x.ndim == 2:
        return x[None]
    if x.ndim == 3:
        return x
    if x.ndim == 4 and x.shape[1] == 1:
        return x[:, 0]
    raise ValueError(f"{name} must have shape (N, H, W), (N, 1, H, W) or (H, W), got {x.shape}")


def _pixel_inputs(masks: Any, maps: Any) -> tuple[np.ndarray, np.ndarray]:
    """(boolean ground truth, float32/float64 maps), both (N, H, W)."""
    gt = _as_stack(_to_numpy(masks), "masks")
    if gt.dtype != np.bool_:  # boolean masks (e.g. disk-backed ones) are used as they are, not copied
        gt = gt > 0.5
    amap = _as_stack(_to_numpy(maps), "maps")
    if amap.dtype not in (np.float32, np.float64):
        amap = amap.astype(np.float64)
    if gt.shape != amap.shape:
        raise ValueError(f"masks and maps differ in shape: {gt.shape} vs {amap.shape}")
    if any(np.isnan(m).any() for m in amap):  # image by image: no full-size temporary
        raise ValueError("maps contain NaN")
    return gt, amap


# --------------------------------------------------------------------------- image level


def image_auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve of image scores (anomaly = positive); nan with one class."""
    data = _image_inputs(labels, scores)
    from sklearn.metrics import roc_auc_score  # here, not at import: scikit-learn takes a second to load

    return _NAN if data is None else float(roc_auc_score(*data))


def image_aupr(labels: Any, scores: Any) -> float:
    """Average precision of image scores with anomaly as the positive class; nan with one class."""
    data = _image_inputs(labels, scores)
    from sklearn.metrics import average_precision_score

    return _NAN if data is None else float(average_precision_score(*data))


def f1_max(labels: Any, scores: Any) -> tuple[float, float]:
    """(best F1, threshold reaching it) over all thresholds; ``score >= threshold`` = anomaly.

    Ties between thresholds go to the lowest one. (nan, nan) with one class.
    """
    data = _image_inputs(labels, scores)
    if data is None:
        return _NAN, _NAN
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(*data)
    # The last precision/recall pair (1, 0) has no threshold.
    p, r = precision[:-1], recall[:-1]
    denom = p + r
    f1 = np.divide(2.0 * p * r, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


# --------------------------------------------------------------------------- pixel level


def pixel_auroc(masks: Any, maps: Any, max_pixels: int | None = 4_000_000, seed: int = 0) -> float:
    """ROC AUC over all pixels of all images (anomalous pixel = positive).

    When there are more than ``max_pixels`` pixels, the AUROC is computed on ``max_pixels``
    pixels drawn uniformly at random (with replacement) with ``numpy.random.default_rng(seed)``,
    which keeps memory and time bounded; if such a sample happens to miss one class, all pixels
    are used. ``max_pixels=None`` always uses every pixel. nan when only one class is present.
    """
    gt, amap = _pixel_inputs(masks, maps)
    y = gt.reshape(-1)
    s = amap.reshape(-1)
    n_pos = int(np.count_nonzero(y))
    if n_pos == 0 or n_pos == y.size:
        return _NAN
    if max_pixels is not None and y.size > max_pixels:
        if max_pixels < 2:
            raise ValueError("max_pixels must be at least 2 (or None)")
        idx = np.random.default_rng(seed).integers(0, y.size, size=max_pixels)
        y_sub, s_sub = y[idx], s[idx]
        if y_sub.any() and not y_sub.all():
            y, s = y_sub, s_sub
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s))


def pro_score(masks: Any, maps: Any, fpr_limit: float = 0.3, num_thresholds: int | None = 200) -> float:
    """Normalised area under the per-region-overlap (PRO) curve up to ``fpr_limit``.

    Following Bergmann et al. (MVTec AD): every 8-connected component of every ground-truth
    mask is a region. At threshold ``t`` a region's overlap is the fraction of its pixels with
    ``map >= t``, PRO(t) is the mean overlap over all regions of all images (each region
    counts the same, whatever its size) and FPR(t) is the fraction of normal pixels (all
    images) with ``map >= t``. The curve, starting at (0, 0), is integrated over FPR in
    [0, fpr_limit] with the trapezoid rule, interpolating linearly at exactly ``fpr_limit``,
    and divided by ``fpr_limit``: a perfect map scores 1.0, a constant map (chance) scores
    fpr_limit / 2 and a map scoring every anomalous pixel below every normal one 0.0.

    Thresholds: with ``num_thresholds=None`` every distinct map value is a threshold, which
    gives the exact curve but costs a sort of all pixels and several arrays of that length
    (meant for small inputs and checks; about 10 s and 0.8 GB for 200 maps of 256 x 256,
    against about 1 s and 25 MB for the default). Otherwise (default) the thresholds are the
    normal-pixel score quantiles at ``num_thresholds`` FPR levels evenly spaced over
    [0, fpr_limit] (plus two beyond it), plus a value just above the largest normal score
    (FPR exactly 0) and the smallest map value (the (1, 1) end point). Quantiles come from
    all normal pixels, or from a fixed-seed uniform sample of about 10**6 of them when there
    are more; that only moves the grid, since FPR and PRO are then counted exactly at each
    threshold from per-threshold histograms (one ``searchsorted`` + ``np.add.at`` per image),
    so beyond the inputs and a boolean copy of the masks, memory stays at one image's worth
    of work arrays, the quantile sample and the thresholds.

    nan when the masks hold no anomalous pixel or no normal pixel.
    """
    if not 0.0 < fpr_limit <= 1.0:
        raise ValueError(f"fpr_limit must be in (0, 1], got {fpr_limit}")
    if num_thresholds is not None and num_thresholds < 2:
        raise ValueError(f"num_thresholds must be at least 2 (or None), got {num_thresholds}")
    gt, amap = _pixel_inputs(masks, maps)
    n_anomalous = int(np.count_nonzero(gt))
    if n_anomalous == 0 or n_anomalous == gt.size:
        return _NAN
    if num_thresholds is None:
        thresholds = np.unique(amap)
    else:
        thresholds = _pro_grid(gt, amap, fpr_limit, num_thresholds)
    fpr, pro = _pro_curve(gt, amap, thresholds)
    return _area_up_to(fpr, pro, fpr_limit) / fpr_limit


def _pro_grid(gt: np.ndarray, amap: np.ndarray, fpr_limit: float, num_thresholds: int) -> np.ndarray:
    """Ascending thresholds spreading the FPR evenly over [0, fpr_limit] (see pro_score)."""
    dtype = amap.dtype.type
    n_normal = gt.size - int(np.count_nonzero(gt))
    keep = min(1.0, _PRO_QUANTILE_SAMPLE / n_normal)
    rng = np.random.default_rng(0)
    parts: list[np.ndarray] = []
    max_normal = -np.inf
    for g, m in zip(gt, amap):
        normal = m[~g]
        if normal.size == 0:
            continue
        max_normal = max(max_normal, float(normal.max()))
        if keep < 1.0:
            normal = normal[rng.random(normal.size) < keep]
        parts.append(normal)
    step = fpr_limit / (num_thresholds - 1)
    levels = np.minimum(np.arange(num_thresholds + 2) * step, 1.0)
    sample = np.concatenate(parts)
    quantiles = np.quantile(sample, 1.0 - levels) if sample.size else np.empty(0)
    top = np.nextafter(dtype(max_normal), dtype(np.inf))
    bottom = amap.min()
    return np.unique(np.concatenate([quantiles.astype(dtype), [top, bottom]]).astype(dtype))


def _pro_curve(gt: np.ndarray, amap: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, PRO) at each threshold, ordered by increasing FPR and starting at (0, 0)."""
    n_bins = thresholds.size + 1
    normal_hist = np.zeros(n_bins, dtype=np.int64)
    region_hist = np.zeros(n_bins, dtype=np.float64)
    n_regions = 0
    from scipy.ndimage import label

    for g, m in zip(gt, amap):
        # bin b = number of thresholds <= value: the pixel is detected at thresholds[:b].
        bins = np.searchsorted(thresholds, m.reshape(-1), side="right")
        regions, count = label(g, structure=_EIGHT_CONNECTED)
        regions = regions.reshape(-1)
        inside = regions > 0
        # ufunc.at rather than bincount(minlength=n_bins): no per-image allocation of
        # n_bins, which is the number of pixels in exact mode.
        np.add.at(normal_hist, bins[~inside], 1)
        if count:
            sizes = np.bincount(regions)
            np.add.at(region_hist, bins[inside], 1.0 / sizes[regions[inside]])
            n_regions += count
    # Detected at thresholds[j] <=> bin > j: suffix sums from bin j + 1.
    normal_ge = np.cumsum(normal_hist[::-1])[::-1][1:]
    region_ge = np.cumsum(region_hist[::-1])[::-1][1:]
    fpr = normal_ge / normal_hist.sum()
    pro = np.minimum(region_ge / n_regions, 1.0)
    # Highest threshold first: FPR and PRO then never decrease.
    return np.concatenate([[0.0], fpr[::-1]]), np.concatenate([[0.0], pro[::-1]])


def _area_up_to(x: np.ndarray, y: np.ndarray, limit: float) -> float:
    """Trapezoid area under (x, y) for x in [0, limit]; x ascending from 0, x[-1] >= limit."""
    k = int(np.searchsorted(x, limit, side="left"))  # x[k - 1] < limit <= x[k]
    x0, x1, y0, y1 = x[k - 1], x[k], y[k - 1], y[k]
    y_limit = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
    return float(np.trapezoid(np.append(y[:k], y_limit), np.append(x[:k], limit)))


# --------------------------------------------------------------------------- all at once


def evaluate(
    labels: Any,
    scores: Any,
    masks: Any = None,
    maps: Any = None,
    has_masks: bool = True,
    *,
    fpr_limit: float = 0.3,
    max_pixels: int | None = 4_000_000,
) -> dict[str, float]:
    """All metrics as plain floats (nan where undefined, see the module docstring).

    Keys: ``image_auroc``, ``image_aupr``, ``image_f1_max``, ``image_f1_threshold`` and, when
    ``masks`` and ``maps`` are given and ``has_masks`` is true, ``pixel_auroc`` and ``pro``.
    """
    labels, scores = _to_numpy(labels), _to_numpy(scores)
    f1, threshold = f1_max(labels, scores)
    result = {
        "image_auroc": image_auroc(labels, scores),
        "image_aupr": image_aupr(labels, scores),
        "image_f1_max": f1,
        "image_f1_threshold": threshold,
    }
    if has_masks and (masks is not None or maps is not None):
        if masks is None or maps is None:
            raise ValueError("pixel metrics need both masks and maps")
        masks, maps = _to_numpy(masks), _to_numpy(maps)
        result["pixel_auroc"] = pixel_auroc(masks, maps, max_pixels=max_pixels)
        result["pro"] = pro_score(masks, maps, fpr_limit=fpr_limit)
    return {key: float(value) for key, value in result.items()}


_IMAGE_KEYS = ("image_auroc", "image_aupr", "image_f1_max", "image_f1_threshold")


def undefined_reasons(labels: Any, masks: Any = None, has_masks: bool = True) -> dict[str, str]:
    """Why each metric that ``evaluate`` (and a threshold's rates) leaves undefined on this
    data is undefined, by key; {} when every metric is defined.  Reports write ``null`` for
    those metrics and this reason beside them, so a missing number is never a mystery."""
    y = _to_numpy(labels).reshape(-1)
    n_bad = int(np.count_nonzero(y == 1))
    n_good = int(y.size) - n_bad
    reasons: dict[str, str] = {}
    if n_good == 0:
        reasons["false_alarm_rate"] = "false-alarm rate undefined: the test split has no normal image"
    if n_bad == 0:
        reasons["detection_rate"] = "detection rate undefined: the test split has no anomalous image"
    if n_good == 0 or n_bad == 0:
        which = "anomalous" if n_bad == 0 else "normal"
        reasons.update(dict.fromkeys(_IMAGE_KEYS, f"image metrics undefined: the test split has no {which} image"))
    if has_masks and masks is not None:
        gt = _as_stack(_to_numpy(masks), "masks")
        n_on = sum(int(np.count_nonzero(m if m.dtype == np.bool_ else m > 0.5)) for m in gt)  # image by image
        why = None
        if n_on == 0:
            why = (
                "the test split has no anomalous image"
                if n_bad == 0
                else f"no defect pixels in the masks of the {n_bad} anomalous test image(s)"
            )
        elif n_on == gt.size:
            why = "every mask pixel is a defect pixel (no normal pixel to compare with)"
        if why is not None:
            reasons.update(dict.fromkeys(("pixel_auroc", "pro"), f"pixel metrics undefined: {why}"))
    return reasons
