"""The smallest fitted Detector of every registered model: one epoch on a dozen random
16 px images (32 px where the model needs it) or 40 random table rows, tiny networks.
Enough for export and engine checks, which need a fitted state, not a good model."""

from __future__ import annotations

import numpy as np

from reconad import Detector
from reconad.models import MODELS, model_entry, model_uses_labels

#: models that need larger images (a pretrained encoder's strides, or the option check)
LARGE = {"hfr": 32, "patchcore": 32, "rx": 32, "hadgan": 32}
#: the smallest settings per option name, where the model has that option
SMALL = {"width": 4, "latent_dim": 4, "search_steps": 1, "bottleneck": 8}


def image_models() -> list[str]:
    """Models that take images (every one but the table-only and the video-only ones)."""
    return [name for name in MODELS if "image" in model_entry(name)[0].input_kinds]


def table_models() -> list[str]:
    """Models that take table rows (their MLP variants), for which export must refuse."""
    return [name for name in MODELS if "table" in model_entry(name)[0].input_kinds]


def minimal_detector(name: str, rows: bool = False) -> Detector:
    """``name`` fitted in about a second (see the module docstring); ``rows``: on table rows."""
    rng = np.random.default_rng(0)
    size = LARGE.get(name, 16)
    fields = model_entry(name)[1].field_names()
    options = {k: v for k, v in SMALL.items() if k in fields}
    if name == "hfr":
        options["width"] = 8
    det = Detector(
        name, epochs=1, batch_size=8, progress=False, device="cpu", patience=None, image_size=size, **options
    )
    data = rng.random((40, 6)).astype(np.float32) if rows else rng.random((12, size, size, 3)).astype(np.float32)
    y = np.r_[np.ones(2), np.zeros(len(data) - 2)] if model_uses_labels(name, options) else None
    return det.fit(data, y)
