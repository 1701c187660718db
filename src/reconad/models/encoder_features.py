"""Features of a frozen encoder, computed once and kept in memory.

Models whose encoder is frozen (HFR) train on these instead of images: the encoder
then runs once per image, not once per image and epoch.  The one-class protocol
shares one set of features across its per-class models.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from reconad.data.records import collate_images
from reconad.engine.progress import progress as progress_iter

__all__ = ["FeatureCache", "encode_dataset"]


class FeatureCache(Dataset):
    """Encoder features of a whole dataset, held in memory (one tensor per level)."""

    def __init__(self, levels: list[torch.Tensor]) -> None:
        self.levels = levels

    def __len__(self) -> int:
        return int(self.levels[0].shape[0])

    def __getitem__(self, i: int) -> list[torch.Tensor]:
        return [lv[i] for lv in self.levels]

    def select(self, indices: torch.Tensor | list[int]) -> FeatureCache:
        """The features of the items at ``indices`` (in that order)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return FeatureCache([lv.index_select(0, idx) for lv in self.levels])


@torch.no_grad()
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
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_images)
    chunks: list[list[torch.Tensor]] = []
    encoder.eval()
    for batch in progress_iter(loader, enabled=progress, desc=desc, unit="batch"):
        chunks.append([f.cpu() for f in encoder(batch.image.to(device))])
    return [torch.cat(parts) for parts in zip(*chunks)]
