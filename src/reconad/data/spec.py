"""Which data a run trains and tests on (:class:`DataSpec`, recorded in a run's
``run.json``) and how that data is read: its splits, a folder of labelled anomalies,
the dataset root."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from reconad.errors import DataError

#: where the embedded texture data is generated when no --root is given
DEFAULT_TEXTURES_ROOT = "demo-data/textures"


def resolve_root(dataset: str, root: str | os.PathLike | None) -> str:
    """Absolute dataset root; the texture data may be generated, every other root must exist."""
    if root is None:
        if dataset != "textures":
            raise DataError(f"--root is required for --dataset {dataset}")
        root = DEFAULT_TEXTURES_ROOT
    path = Path(root)
    if dataset != "textures" and not path.exists():
        raise DataError(f"dataset root not found: {path}")
    if path.exists() and not path.is_dir():
        raise DataError(f"dataset root is a file, not a folder: {path}")
    return str(path.resolve())


@dataclass
class DataSpec:
    """Which data a run trains and tests on (recorded in ``run.json``).

    ``labelled_fraction`` (magnetic tile): a seeded share of each defect class moved into
    training as labelled anomalies and out of the test split.  ``labelled_anomalies``: a
    folder of anomalous images added to training, labelled, with masks from its
    ``masks/`` (or ``ground_truth/``) sub-folder when there is one.  ``drop_labelled``:
    train without those labelled anomalies (for a model that learns from normal data only,
    compared on the same test split).
    """

    dataset: str
    root: str
    category: str | None = None
    image_size: int = 256
    resize_mode: str = "resize"
    labelled_fraction: float = 0.0
    labelled_anomalies: str | None = None
    drop_labelled: bool = False
    #: set when the model scores by tiles: images are then read at their own resolution
    tile_size: int | None = None

    @property
    def load_size(self) -> int | None:
        """The size images are read at: ``image_size``, or their own (None) under tiling."""
        return None if self.tile_size else self.image_size

    def build(self, split: str) -> Dataset:
        from reconad.data import build_image_dataset

        extra: dict[str, Any] = {}
        if self.labelled_fraction:
            if self.dataset != "magnetic-tile":
                raise DataError(f"--labelled-fraction splits magnetic-tile data only, not {self.dataset}")
            extra["labelled_fraction"] = self.labelled_fraction
        ds = build_image_dataset(
            self.dataset,
            self.root,
            category=self.category,
            split=split,
            image_size=self.load_size,
            resize_mode=self.resize_mode,
            **extra,
        )
        if split == "train" and self.labelled_anomalies and not self.drop_labelled:
            from torch.utils.data import ConcatDataset

            return ConcatDataset([ds, labelled_folder(self.labelled_anomalies, self.load_size, self.resize_mode)])
        if split == "train" and self.drop_labelled:
            return _normal_only(ds)
        return ds

    def describe(self) -> str:
        """The data in words, with any labelled anomalies said plainly."""
        text = f"{self.dataset} at {self.root}" + (f" ({self.category})" if self.category else "")
        if self.labelled_fraction:
            text += (
                f"; {self.labelled_fraction:g} of each defect class moved into training as labelled anomalies "
                "(and out of the test split)"
            )
        if self.labelled_anomalies:
            text += f"; labelled anomalies added to training from {self.labelled_anomalies}"
        if self.drop_labelled and (self.labelled_fraction or self.labelled_anomalies):
            text += "; this model trains without the labelled anomalies"
        return text

    def has_val_split(self) -> bool:
        from reconad.data import WITH_VAL_SPLIT

        return self.dataset in WITH_VAL_SPLIT


def split_if_readable(spec: DataSpec, split: str) -> Dataset | None:
    """``spec``'s ``split`` to check another split against (quietly: its own warnings come when
    it is used); None where it cannot be read (no test folder yet, the training data moved)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return spec.build(split)
    except DataError:
        return None


def _normal_only(ds: Dataset) -> Dataset:
    from torch.utils.data import Subset

    from reconad.data.labels import dataset_labels

    labels = dataset_labels(ds)
    return ds if labels is None else Subset(ds, np.flatnonzero(labels == 0).tolist())


def labelled_folder(folder: str | os.PathLike, image_size: int | None, resize_mode: str) -> Dataset:
    """A folder of anomalous images (label 1), masks from ``masks/`` or ``ground_truth/`` inside it."""
    from reconad.data import FolderDataset

    base = Path(folder)
    if not base.is_dir():
        raise DataError(f"--labelled-anomalies: no such folder: {base}")
    mask_dir = next((base / n for n in ("masks", "ground_truth") if (base / n).is_dir()), None)
    try:
        return FolderDataset(None, base, mask_dir, image_size=image_size, resize_mode=resize_mode)
    except DataError as exc:  # e.g. an empty folder: say which option it came from
        raise DataError(f"--labelled-anomalies: {exc}") from exc
