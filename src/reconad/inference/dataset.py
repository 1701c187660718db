"""An image dataset through a pipeline: what ``Detector`` scoring and ``reconad test`` run."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from reconad.inference.checks import checked_scores

if TYPE_CHECKING:
    from reconad.inference.pipeline import FittedPipeline as Pipeline

__all__ = ["iter_dataset"]


def iter_dataset(
    pipe: Pipeline,
    ds: Any,
    want_maps: bool,
    on_batch: Callable[[Any], None] | None,
    show_progress: bool,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(scores float32, maps or None) batch by batch (tiled: image by image), in order."""
    from torch.utils.data import DataLoader

    from reconad.data.records import collate_images
    from reconad.engine.progress import progress

    n = len(ds)
    if pipe.tiler is not None:
        for i in progress(range(n), enabled=show_progress and n > 4, desc="scoring by tiles", unit="img"):
            item = ds[i]
            one = collate_images([item])
            if on_batch is not None:
                on_batch(one)
            s, m = pipe.tiler.score([item.image], pipe.scorer)
            yield checked_scores(s, one, i, pipe.model_name), (m[0][None] if want_maps else None)
        return
    loader = DataLoader(ds, batch_size=pipe.batch_size, shuffle=False, collate_fn=collate_images)
    bar = progress(iter(()), enabled=show_progress and n > 4 * pipe.batch_size, total=n, desc="scoring", unit="img")
    first = 0
    try:
        for batch in loader:
            if on_batch is not None:
                on_batch(batch)
            scores, maps = pipe.scorer(batch.image)
            bar.update(batch.num_samples)
            scores = np.asarray(scores, dtype=np.float32).reshape(-1)
            yield checked_scores(scores, batch, first, pipe.model_name), (maps if want_maps else None)
            first += batch.num_samples
    finally:
        bar.close()
