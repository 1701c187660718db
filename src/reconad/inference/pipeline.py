"""The fitted pipeline: one immutable object that turns images into scores, maps, p-values
and verdicts, whichever engine runs the model.

Built once (``reconad.inference.from_detector`` or ``open_run``), never changed:
``with_engine`` and ``with_tiling`` build new pipelines.  Its ``identity`` (model file,
configuration, engine and its file, tiling) has one ``fingerprint`` that outputs record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reconad.inference.calibrated import Calibrated
from reconad.inference.engines import Scorer
from reconad.inference.identity import Identity
from reconad.inference.spec import InputSpec
from reconad.inference.tiler import Tiler

if TYPE_CHECKING:
    from torch.utils.data import Dataset

    from reconad.data.records import Batch
    from reconad.detector import Detector

__all__ = ["FittedPipeline", "Origin"]


@dataclass(frozen=True)
class Origin:
    """Where a pipeline came from, so another engine or tiling can be built from the same
    model: a run folder (``run``) or a fitted ``Detector`` (``detector``)."""

    model_sha256: str | None
    config: dict[str, Any] = field(compare=False, repr=False)
    run: Path | None = None
    detector: Detector | None = field(default=None, compare=False, repr=False)
    threads: int | None = None
    device: str | None = None
    #: the run's own tiling, which its calibration belongs to
    run_tiling: tuple[int, int] | None = None
    #: the file the engine runs (an export), None for PyTorch
    engine_file: Path | None = None
    engine_file_sha256: str | None = None
    #: a folder holding an export written for a Detector's pipeline (kept while the pipeline lives)
    scratch: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class FittedPipeline:
    """Input spec, engine, tiler, calibration and identity of a fitted model (see the module
    docstring); ``reconad.inference.Pipeline`` adds the ways to build other pipelines."""

    model_name: str
    spec: InputSpec
    scorer: Scorer = field(compare=False, repr=False)
    tiler: Tiler | None
    calibrated: Calibrated
    batch_size: int
    origin: Origin = field(repr=False)

    # ------------------------------------------------------------------ what it is
    @property
    def engine(self) -> str:
        return self.scorer.name

    @property
    def input_size(self) -> int:
        """The side of the squares the engine scores: the tile, or the whole resized image."""
        return self.tiler.tile if self.tiler is not None else self.spec.image_size

    @property
    def tiling(self) -> tuple[int, int] | None:
        return None if self.tiler is None else self.tiler.key

    @property
    def threshold(self) -> float | None:
        return self.calibrated.threshold

    @cached_property
    def identity(self) -> Identity:
        from reconad.inference.identity import config_sha256, state_sha256

        sha = self.origin.model_sha256
        if sha is None:  # a Detector never saved: its tensors in memory
            assert self.origin.detector is not None
            sha = state_sha256(self.origin.detector.model_.trainable_state_dict())
        config = self.origin.config
        return Identity(
            model=self.model_name,
            model_sha256=sha,
            config_sha256=config_sha256(config.get("model_config") or {}, config.get("detector") or {}),
            engine=self.engine,
            engine_file_sha256=self.origin.engine_file_sha256,
            tiling=self.tiling,
        )

    @property
    def fingerprint(self) -> str:
        return self.identity.fingerprint

    def describe(self) -> dict[str, Any]:
        """What answers about this pipeline's scores say (the server's /v1/models, predict.json)."""
        cal = self.calibrated.calibration
        return {
            "model": self.model_name,
            "image_size": self.spec.image_size,
            "resize_mode": self.spec.resize_mode,
            "tiling": None if self.tiling is None else list(self.tiling),
            "engine": self.engine,
            "threshold": self.threshold,
            "threshold_basis": None if cal is None else cal.basis,
            "threshold_engine": self.calibrated.engine,
            "expected_false_alarm_rate": None if cal is None else cal.expected_fpr,
            "calibration": None if cal is None else cal.describe(),
            "calibration_note": self.calibrated.note or None,
            "identity": self.identity.to_dict(),
        }

    # ------------------------------------------------------------------ scoring
    def score_batch(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """The engine on one pre-processed batch (N, 3, s, s), s = ``input_size``."""
        return self.scorer(images)

    def score_images(self, images: Sequence[Any]) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Scores and maps of loaded images (each (3, H, W), as ``spec`` reads them): by tiles
        when the pipeline tiles, else in batches of ``batch_size``."""
        if self.tiler is not None:
            return self.tiler.score(images, self.scorer)
        scores, maps = [], []
        for start in range(0, len(images), self.batch_size):
            part = images[start : start + self.batch_size]
            s, m = self.scorer(np.stack([_array(x) for x in part]))
            scores.append(np.asarray(s, dtype=np.float32).reshape(-1))
            maps.append(m)
        if any(m is None for m in maps):
            return np.concatenate(scores), None
        return np.concatenate(scores), [m for chunk in maps if chunk is not None for m in chunk]

    def iter_dataset(
        self,
        ds: Dataset,
        want_maps: bool = True,
        on_batch: Callable[[Batch], None] | None = None,
        show_progress: bool = False,
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(scores, maps or None) of an image dataset, batch by batch (tiled: image by image);
        ``on_batch`` sees each input batch first (labels, masks, paths)."""
        from reconad.inference.dataset import iter_dataset

        return iter_dataset(self, ds, want_maps, on_batch, show_progress)

    def p_values(self, scores: Any) -> np.ndarray:
        return self.calibrated.p_values(scores)

    def labels(self, scores: Any) -> np.ndarray | None:
        return self.calibrated.labels(scores)


def _array(x: Any) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") and not isinstance(x, np.ndarray) else np.asarray(x)
