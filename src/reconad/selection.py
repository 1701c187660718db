"""``Detector("auto")``: choose the model on synthetic defects, without defect labels.

Each candidate (``CANDIDATES``: a model and its options) trains on the same data and
held-out split as the Detector would; each then scores the held-out normals and, per
normal, two copies with a defect of the *validation* generator
(:func:`reconad.data.synthetic_defects.validation_defect`: ellipses, strokes and shading
blobs, distinct from the generator HFR's denoising trains on).  The candidate with the
best synthetic image AUROC wins (ties: the better pixel AUROC, then the cheaper one), and
its fitted state becomes the Detector's.  Candidates whose training is the same (``hfr``
and ``hfr-patch`` differ only in how they score) train once (``Candidate.shares``).  The candidates, their synthetic figures and the
choice are kept in ``Detector.selection_`` and the saved config (``selection``).

With fewer than ``MIN_NORMALS`` normal images there is too little to hold out and
validate: a one-line warning, and the Detector trains ``FALLBACK`` alone.  A candidate
that fails to train is reported (a warning, and its ``error`` in the record) and
skipped.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from reconad.errors import ConfigError, DataError, ReconadError

if TYPE_CHECKING:
    from reconad.detector import Detector

__all__ = [
    "AUTO",
    "CANDIDATES",
    "FALLBACK",
    "MIN_NORMALS",
    "Candidate",
    "Choice",
    "auto_model",
    "check_auto_options",
    "choose",
]

AUTO = "auto"
MIN_NORMALS = 10
#: the model trained alone when there are too few normal images to choose
FALLBACK = "hfr"
#: synthetic defective copies per held-out normal image
COPIES = 2


@dataclass(frozen=True)
class Candidate:
    """One model setting ``auto`` may choose; ``cost`` orders them by training cost (ties).
    ``shares``: the label of an earlier candidate whose training is the same as this one's
    (they differ only in how they score): this one takes its trained weights instead of
    training again (``Detector.fit_sharing``)."""

    label: str
    model: str
    options: dict[str, Any] = field(default_factory=dict)
    cost: int = 0
    shares: str | None = None


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("patchcore", "patchcore", {}, 0),
    Candidate("hfr", "hfr", {}, 1),
    Candidate("hfr-patch", "hfr", {"hybrid": "patch", "hybrid_weight": 1.0}, 2, shares="hfr"),
    Candidate("hfr-denoise", "hfr", {"denoise": "synthetic"}, 3),
)


def is_auto(model: Any) -> bool:
    return isinstance(model, str) and model.lower() == AUTO


def check_auto_options(options: dict[str, Any], allowed: set[str]) -> None:
    """ConfigError (one line) for options ``auto`` cannot pass to every candidate."""
    extra = sorted(set(options) - allowed)
    if options.get("preset") is not None:
        extra.append("preset")
    if extra:
        raise ConfigError(
            f"model='auto' takes engine and detector options only (it chooses the model's own); got {', '.join(extra)}"
        )


def auto_model(selection: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The chosen model and its options (``FALLBACK`` before a choice)."""
    if not selection or selection.get("model") is None:
        return FALLBACK, {}
    return str(selection["model"]), dict(selection.get("options") or {})


def _normal_count(train: Any, val: Any) -> int:
    from reconad.data.labels import dataset_labels

    n = 0
    for part in (train, val):
        if part is None:
            continue
        labels = dataset_labels(part)
        n += len(part) if labels is None else int((np.asarray(labels) == 0).sum())
    return n


def _synthetic_figures(det: Detector, synthetic: Any) -> tuple[float, float]:
    """(image AUROC, pixel AUROC) of a fitted detector on the synthetic validation set."""
    from reconad.metrics import image_auroc, pixel_auroc

    labels = np.asarray([synthetic[i].label for i in range(len(synthetic))])
    masks = np.stack([synthetic[i].mask[0].numpy() for i in range(len(synthetic))])
    scores, maps = det.score_and_map(synthetic)
    return float(image_auroc(labels, scores)), float(pixel_auroc(masks > 0.5, maps))


def _train(
    make: Callable[[str, dict[str, Any]], Detector],
    c: Candidate,
    fit_args: tuple[Any, ...],
    synthetic: Any,
    trained: Detector | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Fit candidate ``c`` (with ``trained``'s weights when given) and score the synthetic
    set: (fitted Detector or None, its record)."""
    record: dict[str, Any] = {**asdict(c), "synthetic_image_auroc": None, "synthetic_pixel_auroc": None}
    t0 = time.perf_counter()
    try:
        cand = make(c.model, c.options)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # each candidate warns like a full fit would
            if trained is not None:
                cand.fit_sharing(trained, *fit_args)
                record["trained_with"] = c.shares
            else:
                cand.fit(*fit_args)
        image, pixel = _synthetic_figures(cand, synthetic)
    except (ReconadError, RuntimeError, ValueError) as exc:
        record["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        warnings.warn(f"auto: candidate {c.label} failed and is skipped: {record['error']}", stacklevel=4)
        return None, record
    record.update(synthetic_image_auroc=image, synthetic_pixel_auroc=pixel)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    return cand, record


@dataclass
class Choice:
    """What :func:`choose` gives: the fitted winner, the record kept in ``selection_``,
    and every candidate that trained (label -> fitted Detector)."""

    chosen: Detector
    record: dict[str, Any]
    fitted: dict[str, Detector]


def choose(
    split: tuple[Any, Any],
    make: Callable[[str, dict[str, Any]], Detector],
    fit_args: tuple[Any, Any, Any],
    candidates: tuple[Candidate, ...] = CANDIDATES,
    seed: int = 0,
) -> Choice:
    """Train every candidate, keep the best on synthetic defects (see the module's doc).

    ``split``: the (train, validation) parts the Detector's own fit would use;
    ``make(model, options)``: a new unfitted Detector with the caller's other settings;
    ``fit_args``: (data, y, val_data) as given to ``fit``.
    """
    train, val = split
    n = _normal_count(train, val)
    if n < MIN_NORMALS or val is None or len(val) == 0:
        warnings.warn(
            f"auto: {n} normal images are too few to hold out and validate (need {MIN_NORMALS}); training {FALLBACK}",
            stacklevel=4,
        )
        record: dict[str, Any] = {"chosen": FALLBACK, "model": FALLBACK, "options": {}, "candidates": []}
        record["rule"] = f"fallback: {n} normal images, fewer than {MIN_NORMALS}"
        return Choice(make(FALLBACK, {}).fit(*fit_args), record, {})
    from reconad.data.synthetic_defects import SyntheticDefectSet

    synthetic = SyntheticDefectSet(val, COPIES, seed)
    fitted: dict[str, Detector] = {}
    records: list[dict[str, Any]] = []
    for c in candidates:
        cand, record = _train(make, c, fit_args, synthetic, fitted.get(c.shares or ""))
        records.append(record)
        if cand is not None:
            fitted[c.label] = cand
    if not fitted:
        raise DataError(
            "auto: every candidate failed to train: " + "; ".join(f"{r['label']}: {r['error']}" for r in records)
        )
    best = max(
        (r for r in records if r["label"] in fitted),
        key=lambda r: (r["synthetic_image_auroc"], r["synthetic_pixel_auroc"], -r["cost"]),
    )
    choice: dict[str, Any] = {
        "chosen": best["label"],
        "model": best["model"],
        "options": best["options"],
        "rule": "best synthetic image AUROC, then pixel AUROC, then cost",
        "validation": {"normals": len(val), "defects": COPIES * len(val), "generator": "validation", "seed": seed},
        "candidates": records,
    }
    torch.manual_seed(seed)
    return Choice(fitted[best["label"]], choice, fitted)
