"""Nearest-neighbour terms HFR can add to its residual (``hybrid`` option).

A reconstruction residual says "the decoder could not rebuild this"; a nearest-
neighbour distance says "nothing like this was in the training set".  They fail on
different defects, so HFR can add one normalised nearest-neighbour term:

* ``patch``: locally aware patch features of the encoder levels at stride >= 8
  (a 3x3 average, the deeper level upsampled to the finer grid, concatenated, as
  PatchCore), distance of each to its nearest vector of a coreset of the training
  patches: a map.
* ``bottleneck``: the same on the decoder's bottleneck codes (the decoder's own,
  narrow, learned description of each region): a map, and cheap (few positions,
  64 channels).
* ``pooled``: every level globally averaged, concatenated and L2-normalised (the
  one-class kNN baseline's features), mean distance to the ``k`` nearest training
  images: an image score.

Each term is normalised by its mean and standard deviation on held-out normal data,
so that it adds to the (also normalised) residual on a common scale.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reconad.models.coreset import greedy_coreset
from reconad.models.feature_maps import locally_aware_patches, nearest_sq_distances

__all__ = ["NearestTerm", "patch_features", "pooled_features"]


def patch_features(levels: list[torch.Tensor], strides: list[int], min_stride: int = 8) -> torch.Tensor:
    """(B, h, w, D) locally aware patch features of the levels at stride >= ``min_stride``."""
    chosen = [f for f, s in zip(levels, strides) if s >= min_stride] or [levels[-1]]
    return locally_aware_patches(chosen, 3)


def pooled_features(levels: list[torch.Tensor]) -> torch.Tensor:
    """(B, D) globally averaged levels, concatenated and L2-normalised."""
    return F.normalize(torch.cat([f.float().mean(dim=(2, 3)) for f in levels], dim=1), dim=1)


class NearestTerm(nn.Module):
    """A memory bank of training vectors and the normal statistics of the distances to it."""

    bank: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, kind: str, k: int, budget: int) -> None:
        super().__init__()
        self.kind = kind
        self.k = k
        self.budget = budget
        self.register_buffer("bank", torch.zeros(0, 1))
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))

    @torch.no_grad()
    def fit_bank(self, vectors: torch.Tensor, seed: int = 0) -> None:
        """Keep ``vectors`` (N, D), or a greedy coreset of ``budget`` of them."""
        idx = greedy_coreset(vectors, min(self.budget, len(vectors)), seed=seed)
        self.bank = vectors.index_select(0, idx).float().to(self.mean.device)

    def distances(self, vectors: torch.Tensor) -> torch.Tensor:
        """Mean distance of each row of ``vectors`` (..., D) to its ``k`` nearest bank vectors
        (0 before ``fit_bank``: an unfitted term adds nothing)."""
        if self.bank.shape[0] == 0:
            return vectors.new_zeros(vectors.shape[:-1], dtype=torch.float32)
        flat = vectors.reshape(-1, vectors.shape[-1]).float()
        near, _ = nearest_sq_distances(flat, self.bank, min(self.k, int(self.bank.shape[0])))
        return near.sqrt().mean(dim=1).reshape(vectors.shape[:-1])

    @torch.no_grad()
    def fit_stats(self, values: torch.Tensor) -> None:
        """Normal mean and std of the distances (held-out normal data)."""
        v = values.double().flatten()
        self.mean.fill_(float(v.mean()))
        self.std.fill_(float(v.std().clamp_min(1e-12)) if v.numel() > 1 else 1.0)

    def normalised(self, values: torch.Tensor) -> torch.Tensor:
        return (values - self.mean) / self.std

    def load_shape(self, state: dict[str, torch.Tensor], prefix: str) -> None:
        """Resize the bank to what a saved state holds (its size depends on the training data)."""
        key = f"{prefix}bank"
        if key in state:
            self.bank = torch.empty_like(state[key], device=self.mean.device)
