"""Tiled scoring, written once: cut images into tiles, score them in batches through any
engine, stitch the maps and take the highest tile score (``reconad.tiling`` holds the
geometry: tile positions, blending window).

Every consumer that scores by tiles (``Detector``, ``reconad test`` / ``predict``, the
server) goes through ``Tiler``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from reconad.errors import ConfigError

__all__ = ["Tiler"]


def _tensor(image: Any) -> Any:
    import torch

    return image if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image))


@dataclass(frozen=True)
class Tiler:
    """``tile`` squares overlapping by ``overlap`` pixels; ``batch_size`` tiles per engine call."""

    tile: int
    overlap: int
    batch_size: int = 4

    @property
    def key(self) -> tuple[int, int]:
        """(tile size, overlap): what a calibration depends on (the batch size does not)."""
        return self.tile, self.overlap

    def cut(self, images: Sequence[Any]) -> tuple[np.ndarray, list[Any]]:
        """Every image's tiles in one (T, 3, tile, tile) float32 array, and each image's grid."""
        from reconad.tiling import cut_tiles

        cuts = [cut_tiles(_tensor(image), self.tile, self.overlap) for image in images]
        return np.concatenate([t.numpy() for t, _ in cuts]), [grid for _, grid in cuts]

    def stitch(
        self, scores: np.ndarray, maps: np.ndarray | None, grids: Sequence[Any]
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Per image: the highest tile score and the blended map, from the tiles of ``cut``."""
        import torch

        from reconad.tiling import stitch

        if maps is None:
            raise ConfigError("the model gives no anomaly maps, which tiled scoring needs")
        out_scores, out_maps, start = [], [], 0
        for grid in grids:
            part = slice(start, start + len(grid))
            s, m = stitch(torch.as_tensor(scores[part]), torch.as_tensor(maps[part]), grid)
            out_scores.append(s)
            out_maps.append(m.numpy())
            start += len(grid)
        return np.asarray(out_scores, dtype=np.float32), out_maps

    def score(self, images: Sequence[Any], scorer: Any) -> tuple[np.ndarray, list[np.ndarray]]:
        """Score whole images (each (3, H, W), any size) by tiles with ``scorer``, one image at
        a time (its tiles in batches of ``batch_size``): (scores, maps of each image's size)."""
        scores, maps = [], []
        for image in images:
            tiles, grids = self.cut([image])
            parts = [scorer(tiles[i : i + self.batch_size]) for i in range(0, len(tiles), self.batch_size)]
            if any(m is None for _, m in parts):
                raise ConfigError("the model gives no anomaly maps, which tiled scoring needs")
            s, m = self.stitch(
                np.concatenate([np.asarray(p[0]).reshape(-1) for p in parts]),
                np.concatenate([np.asarray(p[1]) for p in parts]),
                grids,
            )
            scores.append(s[0])
            maps.append(m[0])
        return np.asarray(scores, dtype=np.float32), maps

    def describe(self) -> dict[str, Any]:
        """How the tiles are used on whole images (the export's JSON records it)."""
        return {
            "tile_size": self.tile,
            "overlap": self.overlap,
            "image": "read at its own resolution (no resize); padded by reflection up to the tile when smaller",
            "positions": "stride tile - overlap from the top-left; the last row/column of tiles ends at the border",
            "map": "tile maps blended with separable linear ramps over the overlap (reconad.tiling.blend_window)",
            "score": "the highest tile score",
        }
