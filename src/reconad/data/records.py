"""Typed records that datasets yield and loaders batch.

Images are float32 tensors in [0, 1], shape (3, H, W); backbones apply their own
normalisation, so every dataset stays backbone-agnostic.  ``label`` is 0 for a normal
sample and 1 for an anomaly; ``mask`` is a (1, H, W) float tensor of {0, 1}
(all zeros for normal images and for datasets without masks).  Table rows are float32
vectors of features.

Every batch record says how many samples it holds (``num_samples``) and moves itself
to a device (``to``): the engine and the Detector rely on nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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
    """

    levels: list[torch.Tensor]

    @property
    def num_samples(self) -> int:
        return int(self.levels[0].shape[0]) if self.levels else 0

    def to(self, device: torch.device | str) -> FeatureBatch:
        return FeatureBatch([t.to(device, non_blocking=True) for t in self.levels])

    def __len__(self) -> int:
        return self.num_samples


def collate_features(items: list[list[torch.Tensor]]) -> FeatureBatch:
    return FeatureBatch([torch.stack(level) for level in zip(*items)])


#: what a DataLoader of any reconad dataset yields
Batch = ImageBatch | RowBatch | FeatureBatch


def num_samples(batch: object) -> int:
    """How many samples a batch holds: from the record (or a plain tensor's first axis)."""
    if torch.is_tensor(batch):
        return int(batch.shape[0])
    n = getattr(batch, "num_samples", None)
    if not isinstance(n, int):
        raise TypeError(f"a batch must be a tensor or a record with num_samples, got {type(batch).__name__}")
    return n
