"""What every kind of data (table rows, images, video clips) does for the Detector."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from reconad.data.labels import dataset_labels
from reconad.errors import ConfigError

#: How messages name the data a model was trained on, by the model's ``data_kind``.
LABELS = {"table": "table rows", "image": "images", "video": "video clips"}


def only(kinds: Sequence[str]) -> str:
    """ "images and table rows": what a model takes, in words."""
    words = [LABELS.get(k, k) for k in kinds]
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def use_instead(takers: Sequence[str], label: str) -> str:
    """ "; for table rows use ae, vae or esad": the end of a refusal naming the models that
    take the data (nothing when none are given)."""
    if not takers:
        return ""
    names = ", ".join(takers[:-1]) + " or " + takers[-1] if len(takers) > 1 else takers[0]
    return f"; for {label} use {names}"


class DataKind:
    """One kind of data, chosen once per ``fit`` / scoring call (``reconad.data.kinds.kind_of``):
    it turns what the user gave into a dataset, says which labels it carries, checks that
    a model takes it, and says how it is batched.  Subclasses: ``TableKind``,
    ``ImageKind``, ``ClipKind`` (spectra are table rows: one per pixel)."""

    #: the model variant this kind trains (the model's ``data_kind``): table, image or video
    name: ClassVar[str]
    #: whether tiled training (``tile_size``) cuts tiles from it
    tileable: ClassVar[bool] = False
    #: whether anomaly maps exist for it
    has_maps: ClassVar[bool] = True
    #: the one line for an empty scoring input
    empty: ClassVar[str] = "no images to score"

    def collate(self) -> Callable[[list[Any]], Any] | None:
        """How the model's scoring batches items; None: the inference pipeline does (images)."""
        return None

    @property
    def label(self) -> str:
        return LABELS[self.name]

    def dataset(self, data: Any, labels: np.ndarray | None = None) -> Dataset:
        """``data`` as a dataset of this kind's items; ``labels`` (1 = anomaly) replace theirs."""
        raise NotImplementedError

    def known_labels(self, ds: Dataset) -> np.ndarray | None:
        """Labelled anomalies the dataset itself carries (read from disk), which count as ``y``."""
        known = dataset_labels(ds)
        return known if known is not None and known.any() else None

    def input_shape(self, item: Any) -> list[int]:
        """The ``input_shape`` model option from one training item."""
        raise NotImplementedError

    def columns(self, data: Any) -> list[str] | None:
        """Column names to record as ``feature_names_in_`` (tables only)."""
        return None

    def n_features(self, ds: Dataset) -> int | None:
        """The number of features per item, recorded as ``n_features_in_`` (tables only)."""
        return None

    def check_width(self, ds: Dataset, expected: int | None) -> None:
        """DataError when items to score are not as wide as the ones fit saw (tables only)."""

    def match(self, data: Any, names: list[str] | None) -> Any:
        """``data`` with its columns in the fitted order (tables only)."""
        return data

    def check_model(
        self,
        model_name: str,
        input_kinds: tuple[str, ...],
        fitted_kind: str | None = None,
        takers: Sequence[str] = (),
    ) -> None:
        """ConfigError when model ``model_name`` (taking ``input_kinds``; trained on
        ``fitted_kind`` data when fitted) cannot take this kind; the refusal names ``takers``,
        the models that do."""
        if self.name not in input_kinds:
            raise ConfigError(self.not_taken(model_name, input_kinds, takers))
        if fitted_kind is not None and fitted_kind != self.name:
            raise ConfigError(f"this {model_name} model was trained on {LABELS[fitted_kind]}, got {self.label}")

    def not_taken(self, model_name: str, input_kinds: tuple[str, ...], takers: Sequence[str]) -> str:
        """The one-line refusal for a model whose ``input_kinds`` lack this kind."""
        return f"model {model_name} takes {only(input_kinds)} only, got {self.label}{use_instead(takers, self.label)}"
