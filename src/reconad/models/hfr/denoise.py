"""HFR's denoising objective: the decoder sees corrupted features, its target stays clean.

``denoise="synthetic"`` pastes training-generator defects
(:func:`reconad.data.synthetic_defects.training_defect`) into each normal training
image ``denoise_copies`` times, once, seeded, and encodes those copies beside the clean
images, so training keeps running on cached features.  Each time an item is drawn, with
probability ``denoise_prob`` the decoder's input is one of its corrupted copies; the
target is always the clean image's features.  Beside the mean residual over the whole
image, the loss holds ``denoise_weight`` times the mean residual inside the pasted
defects: they cover a few per cent of the pixels, and without that term they hardly
move the mean.  The decoder thus learns to output the
normal content where a defect sits, instead of rebuilding it.  Training only: scoring
and export do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from reconad.data.records import FeatureBatch, ImageItem, collate_features
from reconad.data.sizes import dataset_size
from reconad.data.synthetic_defects import training_defect
from reconad.models.encoder_features import FeatureCache, FeatureItem, encode_with_labels

__all__ = ["CorruptedCopies", "DenoiseBatch", "DenoiseCache", "collate_denoise", "defect_loss", "denoise_cache"]


class CorruptedCopies(Dataset):
    """``copies`` corrupted versions of every image of ``base`` (copy c of image i at
    index ``c * n + i``); each defect is filled from a random other image of ``base``."""

    def __init__(self, base: Dataset, copies: int, seed: int) -> None:
        self.base, self.copies, self.seed = base, int(copies), int(seed)
        self.n = dataset_size(base)

    def __len__(self) -> int:
        return self.n * self.copies

    def __getitem__(self, j: int) -> ImageItem:
        item = self.base[j % self.n]
        rng = np.random.default_rng([self.seed, j])
        other = None
        if self.n > 1:
            k = int(rng.integers(self.n - 1))
            other = self.base[k + (k >= j % self.n)].image
        image, mask = training_defect(item.image, rng, other)
        return ImageItem(image, 0, mask[None], item.path)


@dataclass
class DenoiseItem(FeatureItem):
    inputs: list[torch.Tensor] | None = None  # the decoder's input (clean or corrupted)
    defect: torch.Tensor | None = None  # (h, w) share of each first-level cell inside a pasted defect


@dataclass
class DenoiseBatch(FeatureBatch):
    """A feature batch whose decoder input (``inputs``) may differ from its target (``levels``)."""

    inputs: list[torch.Tensor] | None = None
    defect: torch.Tensor | None = None  # (B, h, w) pasted-defect share per first-level cell

    def to(self, device: torch.device | str) -> DenoiseBatch:
        base = super().to(device)
        inputs = None if self.inputs is None else [t.to(device, non_blocking=True) for t in self.inputs]
        defect = None if self.defect is None else self.defect.to(device, non_blocking=True)
        return DenoiseBatch(base.levels, base.label, base.mask, inputs, defect)


class DenoiseCache(FeatureCache):
    """Clean features (the targets) with ``copies`` corrupted versions of each item's;
    ``__getitem__`` gives an item whose input is a corrupted copy with probability ``prob``
    (normal items only).  ``select`` / ``normal`` give plain clean caches."""

    def __init__(
        self, clean: FeatureCache, corrupted: list[torch.Tensor], defects: torch.Tensor, copies: int, prob: float
    ) -> None:
        super().__init__(clean.levels, clean.labels, clean.masks)
        self.corrupted, self.defects = corrupted, defects
        self.copies, self.prob = int(copies), float(prob)

    def __getitem__(self, i: int) -> DenoiseItem:
        item = super().__getitem__(i)
        inputs, defect = item.levels, torch.zeros(self.defects.shape[-2:])
        if item.label == 0 and float(torch.rand(())) < self.prob:
            j = int(torch.randint(self.copies, ())) * len(self) + i
            inputs, defect = [lv[j] for lv in self.corrupted], self.defects[j].float()
        return DenoiseItem(item.levels, item.label, item.mask, inputs, defect)


def collate_denoise(items: list[Any]) -> FeatureBatch:
    """``collate_features``, plus the decoder inputs of ``DenoiseItem`` records."""
    batch = collate_features(items)
    if not items or not isinstance(items[0], DenoiseItem):
        return batch
    inputs = [torch.stack(level) for level in zip(*(it.inputs for it in items))]
    return DenoiseBatch(batch.levels, batch.label, batch.mask, inputs, torch.stack([it.defect for it in items]))


def denoise_cache(
    clean: FeatureCache, dataset: Dataset, encoder: torch.nn.Module, device: torch.device, cfg: Any, progress: bool
) -> DenoiseCache:
    """Encode ``cfg.denoise_copies`` corrupted copies of ``dataset`` (seeded from torch's
    generator, itself seeded by the engine) and pair them with ``clean``."""
    seed = int(torch.randint(0, 2**31 - 1, ()))
    copies = CorruptedCopies(dataset, cfg.denoise_copies, seed)
    enc = encode_with_labels(encoder, copies, device, batch_size=4, progress=progress, desc="corrupted copies")
    assert enc.masks is not None  # every copy carries its defect's mask
    return DenoiseCache(clean, enc.levels, enc.masks, cfg.denoise_copies, cfg.denoise_prob)


def defect_loss(residuals: list[torch.Tensor], defect: torch.Tensor) -> torch.Tensor:
    """Mean residual inside the pasted defects (``defect``: (B, h, w) shares on the first
    level's grid), averaged over the levels; 0 when the batch holds no defect."""
    if float(defect.sum()) <= 0:
        return residuals[0].new_zeros(())
    terms = []
    for r in residuals:
        m = F.interpolate(defect.unsqueeze(1).to(r.dtype), size=tuple(r.shape[-2:]), mode="area").squeeze(1)
        terms.append((r * m).sum() / m.sum().clamp_min(1e-6))
    return torch.stack(terms).mean()
