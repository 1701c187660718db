"""RSRAE's networks: encoder, the robust subspace recovery layer A, decoder."""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.gan import ConvTrunk, ImageGenerator, conv_plan, init_dcgan, mlp
from reconad.models.rsrae.config import RSRAEConfig


class RSRLayer(nn.Module):
    """z~ = A z with a learned d x D matrix A (its rows span the recovered subspace).

    A starts with orthonormal rows (A A^T = I_d, what L_RSR2 asks for), drawn from
    torch's global RNG.
    """

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(out_dim, in_dim))
        nn.init.orthogonal_(self.A)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.A.t()

    def projection_error(self, z: torch.Tensor) -> torch.Tensor:
        """||z - A^T A z||_2 per sample, (B,): how far each code lies from the subspace."""
        return (z - self(z) @ self.A).norm(dim=1)

    def orthogonality_error(self) -> torch.Tensor:
        """||A A^T - I_d||_F^2: keeps A^T A a projection."""
        eye = torch.eye(self.A.shape[0], device=self.A.device, dtype=self.A.dtype)
        return (self.A @ self.A.t() - eye).pow(2).sum()


def build_encoder(cfg: RSRAEConfig) -> tuple[nn.Module, int]:
    """(encoder x -> flat code of D numbers, D): a DCGAN conv trunk (batch norm) flattened for
    images, an MLP ``D_in -> hidden`` with batch norm after every layer for rows."""
    shape = cfg.input_shape
    assert shape is not None
    if cfg.is_table:
        hidden = cfg.resolved_hidden()
        return mlp([shape[0], *hidden], norm="batch", last_activation=True), hidden[-1]
    plan = conv_plan(shape[0], shape[1:], cfg.width, cfg.min_size)
    trunk = nn.Sequential(ConvTrunk(plan, "batch"), nn.Flatten())
    init_dcgan(trunk)
    return trunk, plan.out_features


def build_decoder(cfg: RSRAEConfig) -> nn.Module:
    """z~ (d numbers) -> x_hat: the DCGAN generator (tanh, [-1, 1]) for images, the mirrored
    MLP with batch norm and no output activation for rows."""
    shape = cfg.input_shape
    assert shape is not None
    d = cfg.resolved_latent()
    if cfg.is_table:
        return mlp([d, *reversed(cfg.resolved_hidden()), shape[0]], norm="batch")
    return ImageGenerator(conv_plan(shape[0], shape[1:], cfg.width, cfg.min_size), d, shape[0])
