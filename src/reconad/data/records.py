"""Typed records that datasets yield and loaders batch.

Images are float32 tensors in [0, 1], shape (3, H, W); backbones apply their own
normalisation, so every dataset stays backbone-agnostic.  ``label`` is 0 for a normal
sample and 1 for an anomaly; ``mask`` is a (1, H, W) float tensor of {0, 1}
(all zeros for normal images and for datasets without masks).
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
    label: torch.Tensor  # (B,) long
    mask: torch.Tensor  # (B, 1, H, W) float; zeros where no mask is known
    path: list[str] = field(default_factory=list)
    defect: list[str] = field(default_factory=list)
    has_mask: bool = False

    def to(self, device: torch.device | str) -> "ImageBatch":
        return ImageBatch(
            image=self.image.to(device),
            label=self.label.to(device),
            mask=self.mask.to(device),
            path=self.path,
            defect=self.defect,
            has_mask=self.has_mask,
        )

    def __len__(self) -> int:
        return int(self.image.shape[0])


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
