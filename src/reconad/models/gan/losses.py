"""GAN losses and per-sample distances."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` against a constant label (1 real, 0 fake)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The standard GAN discriminator loss: real -> 1, fake -> 0."""
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: make the discriminator call fakes real."""
    return bce(fake_logits, 1.0)


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss E[C(fake)] - E[C(real)] (to minimise)."""
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad C(x_mix)||_2 - 1)^2] at random points
    between real and fake samples (mixing weights from torch's global RNG)."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (real + alpha * (fake - real)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def mean_squared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of (a - b)^2 over every non-batch axis, (B,)."""
    return (a - b).pow(2).flatten(1).mean(dim=1)


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of |a - b| over every non-batch axis, (B,)."""
    return (a - b).abs().flatten(1).mean(dim=1)


def sum_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample L1 norm ||a - b||_1 over every non-batch axis, (B,)."""
    return (a - b).abs().flatten(1).sum(dim=1)
