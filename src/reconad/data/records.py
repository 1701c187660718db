"""Typed records that datasets yield and loaders batch.

Images are float32 tensors in [0, 1], shape (3, H, W); backbones apply their own
normalisation, so every dataset stays backbone-agnostic.  ``label`` is 0 for a normal
sample and 1 for an anomaly; ``mask`` is a (1, H, W) float tensor of {0, 1}
(all zeros for normal images and for datasets without masks).  Table rows are float32
vectors of features; hyperspectral pixels are rows too (``SpectrumBatch`` adds their
positions).  Video clips are ``ClipItem`` / ``ClipBatch``: frames (T, C, H, W) in [0, 1]
with per-frame labels and masks.

Every batch record says how many samples it holds (``num_samples``) and moves itself
to a device (``to``): the engine and the Detector rely on nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class ImageItem:
    image: torch.Tensor
    label: int = 0
    mask: torch.Tensor | None = None
    path: str = ""
    defect: str = "good"


@dataclass
class ImageBatch:
    image: torch.Tensor  # (B, 3, H, W)
    label: torch.Tensor | None = None  # (B,) long; None when unknown (scoring raw images)
    mask: torch.Tensor | None = None  # (B, 1, H, W) float; zeros where no mask is known
    path: list[str] = field(default_factory=list)
    defect: list[str] = field(default_factory=list)
    has_mask: bool = False

    @classmethod
    def of(cls, images: torch.Tensor) -> ImageBatch:
        """A batch of bare images (no labels, masks or paths), e.g. for export or scoring."""
        return cls(image=images)

    @property
    def num_samples(self) -> int:
        return int(self.image.shape[0])

    def to(self, device: torch.device | str) -> ImageBatch:
        return ImageBatch(
            image=self.image.to(device),
            label=None if self.label is None else self.label.to(device),
            mask=None if self.mask is None else self.mask.to(device),
            path=self.path,
            defect=self.defect,
            has_mask=self.has_mask,
        )

    def __len__(self) -> int:
        return self.num_samples


def collate_images(items: list[ImageItem]) -> ImageBatch:
    """Collate ``ImageItem`` records into one ``ImageBatch`` (for ``DataLoader``)."""
    images = torch.stack([it.image for it in items])
    _, _, h, w = images.shape
    has_mask = any(it.mask is not None for it in items)
    masks = torch.stack([it.mask if it.mask is not None else torch.zeros(1, h, w) for it in items])
    return ImageBatch(
        image=images,
        label=torch.tensor([int(it.label) for it in items], dtype=torch.long),
        mask=masks.float(),
        path=[it.path for it in items],
        defect=[it.defect for it in items],
        has_mask=has_mask,
    )


@dataclass
class RowItem:
    x: torch.Tensor  # (D,) float32
    label: int = 0


@dataclass
class RowBatch:
    x: torch.Tensor  # (B, D) float32
    label: torch.Tensor | None = None  # (B,) long; 1 = labelled anomaly

    @property
    def num_samples(self) -> int:
        return int(self.x.shape[0])

    def to(self, device: torch.device | str) -> RowBatch:
        return RowBatch(x=self.x.to(device), label=None if self.label is None else self.label.to(device))

    def __len__(self) -> int:
        return self.num_samples


def collate_rows(items: list[RowItem]) -> RowBatch:
    return RowBatch(
        x=torch.stack([it.x for it in items]), label=torch.tensor([int(it.label) for it in items], dtype=torch.long)
    )


@dataclass
class FeatureBatch:
    """Feature maps of a frozen encoder, one (B, C_l, h_l, w_l) tensor per level.

    What models that train on cached encoder features (HFR, PatchCore) see instead of
    images; ``predict_step`` accepts it too (scores from features already computed).
    ``label`` (B,) and ``mask`` (B, h, w) (share of each cell of the first level's grid
    inside a defect) come along when the data has labelled anomalies.
    """

    levels: list[torch.Tensor]
    label: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    @property
    def num_samples(self) -> int:
        return int(self.levels[0].shape[0]) if self.levels else 0

    def to(self, device: torch.device | str) -> FeatureBatch:
        move = lambda t: None if t is None else t.to(device, non_blocking=True)
        return FeatureBatch([t.to(device, non_blocking=True) for t in self.levels], move(self.label), move(self.mask))

    def __len__(self) -> int:
        return self.num_samples


def collate_features(items: list[Any]) -> FeatureBatch:
    """Batch ``FeatureItem`` records (or bare lists of per-level tensors)."""
    if items and isinstance(items[0], (list, tuple)):
        return FeatureBatch([torch.stack(level) for level in zip(*items)])
    levels = [torch.stack(level) for level in zip(*(it.levels for it in items))]
    label = torch.tensor([int(it.label) for it in items], dtype=torch.long)
    masks = [it.mask for it in items]
    mask = None if any(m is None for m in masks) else torch.stack(masks).float()
    return FeatureBatch(levels, label, mask)


@dataclass
class ClipItem:
    """A video clip: ``frames`` (T, C, H, W) float in [0, 1], their indices in the clip (T,),
    per-frame labels (T,) and masks (T, 1, H, W) where known."""

    frames: torch.Tensor
    clip: str = ""
    index: torch.Tensor | None = None
    labels: torch.Tensor | None = None
    masks: torch.Tensor | None = None


@dataclass
class ClipBatch:
    """Clips (B, T, C, H, W) with their clip ids, frame indices (B, T), per-frame labels
    (B, T) and masks (B, T, 1, H, W) (None where unknown)."""

    frames: torch.Tensor
    clip: list[str] = field(default_factory=list)
    index: torch.Tensor | None = None
    label: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    @classmethod
    def of(cls, frames: torch.Tensor) -> ClipBatch:
        return cls(frames=frames)

    @property
    def num_samples(self) -> int:
        return int(self.frames.shape[0])

    def to(self, device: torch.device | str) -> ClipBatch:
        move = lambda t: None if t is None else t.to(device)
        return ClipBatch(self.frames.to(device), self.clip, move(self.index), move(self.label), move(self.mask))

    def __len__(self) -> int:
        return self.num_samples


def _stack_or_none(values: list[torch.Tensor | None]) -> torch.Tensor | None:
    present = [v for v in values if v is not None]
    return torch.stack(present) if len(present) == len(values) else None


def collate_clips(items: list[ClipItem]) -> ClipBatch:
    """Collate ``ClipItem`` records into one ``ClipBatch``."""
    return ClipBatch(
        frames=torch.stack([it.frames for it in items]),
        clip=[it.clip for it in items],
        index=_stack_or_none([it.index for it in items]),
        label=_stack_or_none([it.labels for it in items]),
        mask=_stack_or_none([it.masks for it in items]),
    )


@dataclass
class SpectrumBatch(RowBatch):
    """Pixels of a hyperspectral scene as spectra (B, bands), with their (row, col)
    positions (B, 2) and the scene's (H, W); table models read it as a ``RowBatch``."""

    position: torch.Tensor | None = None
    scene_shape: tuple[int, int] | None = None

    @property
    def whole_scene(self) -> bool:
        """True when the batch holds every pixel of its scene, in row-major order."""
        if self.position is None or self.scene_shape is None:
            return False
        h, w = self.scene_shape
        if self.num_samples != h * w:
            return False
        flat = self.position[:, 0] * w + self.position[:, 1]
        return bool(torch.equal(flat.cpu(), torch.arange(h * w)))

    def to(self, device: torch.device | str) -> SpectrumBatch:
        return SpectrumBatch(
            x=self.x.to(device),
            label=None if self.label is None else self.label.to(device),
            position=self.position,
            scene_shape=self.scene_shape,
        )


#: what a DataLoader of any reconad dataset yields
Batch = ImageBatch | RowBatch | FeatureBatch | ClipBatch


def num_samples(batch: object) -> int:
    """How many samples a batch holds: from the record (or a plain tensor's first axis)."""
    if torch.is_tensor(batch):
        return int(batch.shape[0])
    n = getattr(batch, "num_samples", None)
    if not isinstance(n, int):
        raise TypeError(f"a batch must be a tensor or a record with num_samples, got {type(batch).__name__}")
    return n
