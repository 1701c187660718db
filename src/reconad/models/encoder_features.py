"""Features of a frozen encoder, computed once and kept in memory.

Models whose encoder is frozen (HFR, PatchCore) train on these instead of images: the
encoder then runs once per image, not once per image and epoch.  The one-class
protocol shares one set of features across its per-class models.  Labels (1 = a
labelled anomaly) and defect masks, downsampled to the finest feature grid, travel
with the features when the dataset has labelled anomalies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reconad.data.records import collate_images
from reconad.engine.progress import progress as progress_iter

__all__ = ["EncodedData", "FeatureCache", "FeatureItem", "encode_dataset", "encode_with_labels"]


@dataclass
class FeatureItem:
    levels: list[torch.Tensor]
    label: int = 0
    mask: torch.Tensor | None = None  # (h, w) share of each cell inside a defect


class FeatureCache(Dataset):
    """Encoder features of a whole dataset, held in memory (one tensor per level), with
    the items' labels and defect masks when there are labelled anomalies."""

    def __init__(
        self, levels: list[torch.Tensor], labels: torch.Tensor | None = None, masks: torch.Tensor | None = None
    ) -> None:
        self.levels = levels
        self.labels = labels
        self.masks = masks

    def __len__(self) -> int:
        return int(self.levels[0].shape[0])

    def __getitem__(self, i: int) -> FeatureItem:
        label = 0 if self.labels is None else int(self.labels[i])
        mask = None if self.masks is None else self.masks[i]
        return FeatureItem([lv[i] for lv in self.levels], label, mask)

    def select(self, indices: torch.Tensor | list[int]) -> FeatureCache:
        """The features of the items at ``indices`` (in that order)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        pick = lambda t: None if t is None else t.index_select(0, idx)
        return FeatureCache([lv.index_select(0, idx) for lv in self.levels], pick(self.labels), pick(self.masks))

    def normal(self) -> FeatureCache:
        """Only the items not labelled anomalous."""
        if self.labels is None or not bool((self.labels == 1).any()):
            return self
        return self.select(torch.nonzero(self.labels == 0).flatten())


@dataclass
class EncodedData:
    levels: list[torch.Tensor]
    labels: torch.Tensor
    masks: torch.Tensor | None


@torch.no_grad()
def encode_with_labels(
    encoder: torch.nn.Module,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 4,
    progress: bool = True,
    desc: str = "encoder features",
) -> EncodedData:
    """Frozen-encoder features of a dataset of ``ImageItem``, with labels and masks (area-
    downsampled to the first level's grid; None when no item carries a mask)."""
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_images)
    chunks: list[list[torch.Tensor]] = []
    labels, masks, any_mask = [], [], False
    encoder.eval()
    for batch in progress_iter(loader, enabled=progress, desc=desc, unit="batch"):
        feats = encoder(batch.image.to(device))
        chunks.append([f.cpu() for f in feats])
        labels.append(batch.label if batch.label is not None else torch.zeros(len(batch), dtype=torch.long))
        any_mask = any_mask or batch.has_mask
        m = batch.mask if batch.mask is not None else torch.zeros(len(batch), 1, *batch.image.shape[-2:])
        masks.append(F.interpolate(m.float(), size=tuple(feats[0].shape[-2:]), mode="area")[:, 0].half())
    levels = [torch.cat(parts) for parts in zip(*chunks)]
    return EncodedData(levels, torch.cat(labels), torch.cat(masks) if any_mask else None)


def encode_dataset(
    encoder: torch.nn.Module,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 4,
    progress: bool = True,
    desc: str = "encoder features",
) -> list[torch.Tensor]:
    """Frozen-encoder features of a whole dataset of ``ImageItem``: one (N, C, h, w) tensor per level.

    Small batches suit large images on a CPU (BENCHMARKS.md, speed); small images take larger ones.
    """
    return encode_with_labels(encoder, dataset, device, batch_size, progress, desc).levels
