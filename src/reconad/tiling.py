"""Scoring images larger than the model's input by overlapping tiles: the geometry (tile
positions, blending window, cutting and stitching) and the training tiles; the scoring
itself, through any engine, is ``reconad.inference.Tiler``.

A model trained on ``tile_size`` squares scores an image of any size at its native
resolution: the image is cut into tiles that overlap by ``overlap`` pixels (the last
tile of a row or column is moved back to end at the image border, so every pixel is
covered and no tile hangs over the edge), the tiles are scored in batches, and their
maps are stitched with blending weights (:func:`blend_window`) that fall from 1 to
nearly 0 across the overlap band.  Where two tiles overlap, the one whose centre is
nearer dominates, so a model's own border effects (zero padding of its convolutions)
leave no seam as long as they are narrower than half the overlap.  An image smaller than a tile is padded by reflection to the tile size and its
map cropped back.

The image score is the highest tile score: a 10-pixel defect on a 2048-pixel photo is a
tiny share of the whole map, and any whole-image statistic would dilute it.  Each tile
score is the model's own image score of that tile, so calibration on held-out normal
images works as before (on these image scores).

Training samples tiles at random positions of the normal images (:class:`RandomTiles`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from reconad.data.records import ImageItem
from reconad.data.sizes import dataset_size
from reconad.errors import ConfigError

__all__ = [
    "TileGrid",
    "check_tiling",
    "resolve_overlap",
    "blend_window",
    "cut_tiles",
    "stitch",
    "RandomTiles",
]


def check_tiling(tile_size: object, overlap: object, min_size: int = 1) -> None:
    """ConfigError for a tile size or overlap that cannot work."""
    if tile_size is None:
        return
    if isinstance(tile_size, bool) or not isinstance(tile_size, (int, np.integer)):
        raise ConfigError(f"tile_size must be an integer number of pixels, got {tile_size!r}")
    if int(tile_size) < min_size:
        raise ConfigError(f"tile_size must be >= {min_size} for this model, got {tile_size}")
    if overlap is None:
        return
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)) or int(overlap) < 0:
        raise ConfigError(f"tile_overlap must be an integer >= 0, got {overlap!r}")
    if int(overlap) >= int(tile_size):
        raise ConfigError(f"tile_overlap ({overlap}) must be smaller than tile_size ({tile_size})")


def resolve_overlap(tile_size: int, overlap: int | None) -> int:
    """The overlap to use: as given, or an eighth of the tile (32 px for 256-px tiles)."""
    return int(overlap) if overlap is not None else int(tile_size) // 8


def _starts(length: int, tile: int, stride: int) -> list[int]:
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)  # the last tile ends at the border
    return starts


@dataclass(frozen=True)
class TileGrid:
    """Tile positions covering a ``height`` x ``width`` image (padded up to the tile when smaller)."""

    height: int
    width: int
    tile: int
    overlap: int

    @property
    def padded(self) -> tuple[int, int]:
        return max(self.height, self.tile), max(self.width, self.tile)

    @property
    def positions(self) -> list[tuple[int, int]]:
        stride = self.tile - self.overlap
        h, w = self.padded
        return [(top, left) for top in _starts(h, self.tile, stride) for left in _starts(w, self.tile, stride)]

    def __len__(self) -> int:
        return len(self.positions)


def blend_window(tile: int, overlap: int, floor: float = 1e-3) -> torch.Tensor:
    """(tile, tile) weights, separable: 1 in the middle, rising linearly across the inner
    half of the overlap band, and ``floor`` (never 0, so the image's own border keeps
    its values) on the outer half.  Within any overlap the neighbour whose centre is
    nearer carries the pixel, so a model's border effect narrower than half the
    overlap never reaches the stitched map."""
    margin = overlap // 2
    d = np.minimum(np.arange(tile), tile - 1 - np.arange(tile))  # distance to the tile's edge
    w = np.clip((d - margin + 1) / float(overlap - margin + 1), floor, 1.0)
    return torch.from_numpy(np.outer(w, w).astype(np.float32))


def _pad_image(image: torch.Tensor, tile: int) -> torch.Tensor:
    """Pad a (3, H, W) image up to at least ``tile`` on each side (reflection, edge when too thin)."""
    h, w = image.shape[-2:]
    ph, pw = max(0, tile - h), max(0, tile - w)
    if not ph and not pw:
        return image
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(image[None], (0, pw, 0, ph), mode=mode)[0]


def cut_tiles(image: torch.Tensor, tile: int, overlap: int) -> tuple[torch.Tensor, TileGrid]:
    """(T, 3, tile, tile) tiles of a (3, H, W) image, and the grid they come from."""
    grid = TileGrid(int(image.shape[-2]), int(image.shape[-1]), tile, overlap)
    padded = _pad_image(image, tile)
    return torch.stack([padded[:, t : t + tile, left : left + tile] for t, left in grid.positions]), grid


def stitch(scores: torch.Tensor, maps: torch.Tensor, grid: TileGrid) -> tuple[float, torch.Tensor]:
    """(highest tile score, blended (H, W) map) from the scores and maps of ``grid``'s tiles."""
    tile = grid.tile
    maps = torch.as_tensor(maps).float().cpu()
    if maps.shape[-2:] != (tile, tile):  # a model whose map is coarser than its input
        maps = F.interpolate(maps[:, None], size=(tile, tile), mode="bilinear", align_corners=False)[:, 0]
    window = blend_window(tile, grid.overlap)
    acc = torch.zeros(grid.padded, dtype=torch.float32)
    weight = torch.zeros(grid.padded, dtype=torch.float32)
    for (t, left), m in zip(grid.positions, maps):
        acc[t : t + tile, left : left + tile] += m * window
        weight[t : t + tile, left : left + tile] += window
    return float(torch.as_tensor(scores).float().max()), (acc / weight)[: grid.height, : grid.width]


class RandomTiles(Dataset[ImageItem]):
    """Training tiles: ``per_image`` seeded random ``tile`` squares of each image of ``base``.

    Tile positions depend only on (seed, index), so an epoch sees the same tiles on every
    run (resume and same-seed runs stay identical).  Decoded images are kept (as uint8)
    after their first use: decoding a large photo once per tile would dominate training.
    A tile of an image that carries a mask gets the mask's crop and is labelled anomalous
    only where that crop holds defect pixels.
    """

    def __init__(self, base: Dataset, tile: int, per_image: int | None = None, seed: int = 0) -> None:
        self.base, self.tile, self.seed = base, int(tile), int(seed)
        self._images: dict[int, tuple[torch.Tensor, torch.Tensor | None, ImageItem]] = {}
        n = dataset_size(base)
        if per_image is None:  # cover an image about once per epoch
            first = self._image(0)[0]
            per_image = len(TileGrid(int(first.shape[-2]), int(first.shape[-1]), self.tile, 0))
        self.per_image = max(1, int(per_image))
        self._n = n

    def _image(self, i: int) -> tuple[torch.Tensor, torch.Tensor | None, ImageItem]:
        if i not in self._images:
            item = self.base[i]
            img = (_pad_image(item.image, self.tile) * 255.0).round().to(torch.uint8)
            mask = None if item.mask is None else _pad_image(item.mask, self.tile)
            self._images[i] = (img, mask, item)
        return self._images[i]

    def __len__(self) -> int:
        return self._n * self.per_image

    def __getitem__(self, index: int) -> ImageItem:
        img, mask, item = self._image(index // self.per_image)
        h, w = img.shape[-2:]
        rng = np.random.default_rng([self.seed, index])
        top = int(rng.integers(0, h - self.tile + 1))
        left = int(rng.integers(0, w - self.tile + 1))
        crop = img[:, top : top + self.tile, left : left + self.tile].float() / 255.0
        m = None if mask is None else mask[:, top : top + self.tile, left : left + self.tile]
        label = item.label if m is None or not item.label else int(bool((m > 0.5).any()))
        return ImageItem(image=crop, label=label, mask=m, path=item.path, defect=item.defect)

    @property
    def labels(self) -> list[int]:
        from reconad.data.labels import dataset_labels

        base = dataset_labels(self.base)
        return [0] * len(self) if base is None else np.repeat(base, self.per_image).astype(int).tolist()
