"""A tiny tabular autoencoder on the engine's model contract, for engine tests."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from reconad.models.base import AnomalyModel


class ToyRows(Dataset):
    def __init__(self, n: int = 64, dim: int = 8, seed: int = 0, shift: float = 0.0) -> None:
        g = torch.Generator().manual_seed(seed)
        basis = torch.randn(2, dim, generator=torch.Generator().manual_seed(123))
        z = torch.randn(n, 2, generator=g)
        self.x = z @ basis + 0.05 * torch.randn(n, dim, generator=g) + shift

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


class ToyAE(AnomalyModel):
    name = "toy"

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, 16),
            nn.BatchNorm1d(16),
            nn.ReLU(),
            nn.Linear(16, 2),
            nn.Linear(2, 16),
            nn.ReLU(),
            nn.Linear(16, dim),
        )

    def collate_fn(self):
        return lambda items: torch.stack(items)

    def training_loss(self, batch: torch.Tensor) -> torch.Tensor:
        return ((self.net(batch) - batch) ** 2).mean()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((self.net(x) - x) ** 2).mean(dim=1)
