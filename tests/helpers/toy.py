"""Tiny models on the engine's contract, for engine tests: an autoencoder and a two-optimiser GAN."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import Dataset

from reconad.data.records import RowBatch, RowItem, collate_rows
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.base import AnomalyModel, ScoreOutput


class ToyRows(Dataset):
    def __init__(self, n: int = 64, dim: int = 8, seed: int = 0, shift: float = 0.0) -> None:
        g = torch.Generator().manual_seed(seed)
        basis = torch.randn(2, dim, generator=torch.Generator().manual_seed(123))
        z = torch.randn(n, 2, generator=g)
        self.x = z @ basis + 0.05 * torch.randn(n, dim, generator=g) + shift

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> RowItem:
        return RowItem(self.x[i])


class ToyAE(AnomalyModel):
    name = "toy"
    input_kinds = ("table",)

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
        return collate_rows

    def training_loss(self, batch: RowBatch) -> torch.Tensor:
        return ((self.net(batch.x) - batch.x) ** 2).mean()

    def predict_step(self, batch: RowBatch) -> ScoreOutput:
        return ScoreOutput(((self.net(batch.x) - batch.x) ** 2).mean(dim=1))


class ToyGAN(AnomalyModel):
    """Generator and discriminator with their own optimisers: the discriminator steps every
    batch, the generator every ``n_critic``-th (a counter kept in the checkpoint); noise is
    drawn from torch's global generator (restored on resume); the generator's optimiser
    has a cosine schedule and its own betas, the discriminator its own lr."""

    name = "toygan"
    input_kinds = ("table",)
    default_monitor = "none"

    def __init__(self, dim: int = 8, n_critic: int = 2, fail_at_step: int | None = None) -> None:
        super().__init__()
        self.g = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, dim))
        self.d = nn.Sequential(nn.Linear(dim, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))
        self.n_critic = n_critic
        self.fail_at_step = fail_at_step

    def collate_fn(self):
        return collate_rows

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {
            "g": OptimizerSpec(self.g.parameters(), betas=(0.5, 0.999), scheduler="cosine"),
            "d": OptimizerSpec(self.d.parameters(), lr=2e-3, betas=(0.5, 0.999)),
        }

    def training_step(self, batch: RowBatch, ctx: StepContext) -> StepOutput:
        if self.fail_at_step is not None and ctx.global_step == self.fail_at_step:
            raise KeyboardInterrupt("simulated kill")
        bce = nn.functional.binary_cross_entropy_with_logits
        x = batch.x
        fake = self.g(torch.randn(len(x), 4))
        real_logit, fake_logit = self.d(x), self.d(fake.detach())
        loss_d = bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit))
        logs = {"loss_d": ctx.step("d", loss_d)}
        ctx.counters["d_steps"] = ctx.counters.get("d_steps", 0) + 1
        if ctx.counters["d_steps"] % self.n_critic == 0:
            g_logit = self.d(self.g(torch.randn(len(x), 4)))
            logs["loss_g"] = ctx.step("g", bce(g_logit, torch.ones_like(g_logit)))
        return StepOutput(logs["loss_d"], logs)

    @torch.no_grad()
    def validation_step(self, batch: RowBatch) -> dict[str, float]:
        return {"d_real": float(torch.sigmoid(self.d(batch.x)).mean())}

    def predict_step(self, batch: RowBatch) -> ScoreOutput:
        return ScoreOutput(-self.d(batch.x).squeeze(1))
