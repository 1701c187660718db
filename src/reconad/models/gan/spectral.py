"""Spectral normalisation (Miyato et al. 2018), written so that ONNX can export it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize


class SpectralNorm(nn.Module):
    """Parametrisation weight -> weight / sigma(weight) (Miyato et al. 2018).

    sigma is estimated by power iteration: one step per forward pass in training mode,
    fifteen at construction, the vectors u, v kept as buffers (saved, checkpointed,
    resumed).  The same scheme as ``torch.nn.utils.parametrizations.spectral_norm``, but
    sigma is written as ``sum(u * (W v))`` instead of ``torch.vdot``, which ONNX cannot
    export, so spectrally normalised scoring graphs export.
    """

    _u: torch.Tensor
    _v: torch.Tensor

    def __init__(self, weight: torch.Tensor, dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        mat = self._matrix(weight.detach())
        self.register_buffer("_u", F.normalize(mat.new_empty(mat.shape[0]).normal_(), dim=0, eps=eps))
        self.register_buffer("_v", F.normalize(mat.new_empty(mat.shape[1]).normal_(), dim=0, eps=eps))
        self._power_iteration(mat, 15)

    def _matrix(self, weight: torch.Tensor) -> torch.Tensor:
        return (weight.movedim(self.dim, 0) if self.dim else weight).flatten(1)

    @torch.no_grad()
    def _power_iteration(self, mat: torch.Tensor, steps: int) -> None:
        for _ in range(steps):
            self._v.copy_(F.normalize(mat.t() @ self._u, dim=0, eps=self.eps))
            self._u.copy_(F.normalize(mat @ self._v, dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        mat = self._matrix(weight)
        if self.training:
            self._power_iteration(mat.detach(), 1)
        u, v = self._u.clone(), self._v.clone()  # the graph keeps these, not the buffers updated later
        return weight / (u * (mat @ v)).sum()


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (:class:`SpectralNorm`) of every convolution and linear layer in ``module``."""
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and not parametrize.is_parametrized(child):
            dim = 1 if isinstance(child, nn.ConvTranspose2d) else 0
            parametrize.register_parametrization(child, "weight", SpectralNorm(child.weight, dim))
    return module
