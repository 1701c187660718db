"""Video clips (a ``reconad.data.video.ClipWindows`` dataset): the 3-D variants of ae and memae."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from torch.utils.data import Dataset

from reconad.data.kinds.base import DataKind, use_instead
from reconad.data.records import collate_clips
from reconad.errors import ConfigError


class ClipKind(DataKind):
    name: ClassVar[str] = "video"

    def collate(self) -> Callable[[list[Any]], Any]:
        return collate_clips

    def dataset(self, data: Any, labels: np.ndarray | None = None) -> Dataset:
        if labels is not None and np.asarray(labels).any():
            raise ConfigError("clip datasets train on normal clips only; labelled anomalies are not used")
        return data

    def input_shape(self, item: Any) -> list[int]:
        t, c, h, w = item.frames.shape  # (T, C, H, W) frames -> [C, T, H, W]
        return [c, t, h, w]

    def not_taken(self, model_name: str, input_kinds: tuple[str, ...], takers: Sequence[str]) -> str:
        return f"model {model_name} takes no video clips{use_instead(takers, 'clips')}"
