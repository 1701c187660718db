"""Scores that would pass every threshold as "normal" (NaN, infinite) never leave a
pipeline: a non-finite input is a DataError naming the sample, a non-finite score of a
finite input a ScoringError (the model itself is broken)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from reconad.calibration import finite_scores

if TYPE_CHECKING:
    import torch

    from reconad.data.records import Batch

__all__ = ["checked_scores", "sample_names"]


def sample_names(batch: Batch, first: int) -> list[str]:
    """How an error names each sample of a batch: its path, clip, or row number."""
    from reconad.data.records import ClipBatch, ImageBatch

    n = batch.num_samples
    given = batch.path if isinstance(batch, ImageBatch) else batch.clip if isinstance(batch, ClipBatch) else []
    kind = "image" if isinstance(batch, ImageBatch) else "clip" if isinstance(batch, ClipBatch) else "row"
    return [given[j] if j < len(given) and given[j] else f"{kind} {first + j}" for j in range(n)]


def _batch_inputs(batch: Batch) -> torch.Tensor | None:
    """The input tensor of a batch (images, rows or clip frames), sample first."""
    from reconad.data.records import ClipBatch, ImageBatch, RowBatch

    if isinstance(batch, ImageBatch):
        return batch.image
    if isinstance(batch, ClipBatch):
        return batch.frames
    return batch.x if isinstance(batch, RowBatch) else None


def checked_scores(scores: np.ndarray, batch: Batch, first: int, model_name: str) -> np.ndarray:
    """``scores`` of ``batch`` (its first sample is number ``first``) if all are finite."""
    if np.isfinite(scores).all():
        return scores
    import torch

    names = sample_names(batch, first)
    inputs = _batch_inputs(batch)
    for j in np.flatnonzero(~np.isfinite(scores)):
        if inputs is not None and not torch.isfinite(inputs[j]).all():
            from reconad.errors import DataError

            raise DataError(f"{names[j]}: the input holds NaN or infinite values")
    why = f" from the {model_name} model although the input is finite (check its weights, or retrain it)"
    return finite_scores(scores, names, why)
