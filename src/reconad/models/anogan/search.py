"""AnoGAN's latent search: find z* with G(z*) closest to x by gradient descent on z."""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.gan import sum_abs


def mapping_loss(
    generator: nn.Module, discriminator: nn.Module, x: torch.Tensor, f_x: torch.Tensor, z: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(per-sample loss (1 - lam)·R + lam·D, R, G(z)): R = ||x - G(z)||_1, D = ||f(x) - f(G(z))||_1."""
    g = generator(z)
    _, f_g = discriminator(g)
    residual = sum_abs(x, g)
    return (1.0 - lam) * residual + lam * sum_abs(f_x, f_g), residual, g


def search_latent(
    generator: nn.Module,
    discriminator: nn.Module,
    x: torch.Tensor,
    latent_dim: int,
    steps: int,
    lr: float,
    lam: float,
    seed: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-sample score at z*, G(z*)) for images ``x`` in [-1, 1].

    Runs with gradients whatever the caller's mode (the Detector scores under
    ``torch.inference_mode``): the input is cloned into a normal tensor, the networks'
    parameters get no gradients (``torch.autograd.grad`` on z only), and the starting
    point z_0 comes from a generator seeded with ``seed`` (never the global RNG) and is the
    same for every image.
    Adam's update is element-wise, so each image's search is independent of the others
    in the batch.
    """
    with torch.inference_mode(False), torch.enable_grad():
        x = x.detach().clone()
        rng = torch.Generator(device=x.device).manual_seed(int(seed))
        # every image starts from the same z_0, so its search never depends on its batch
        z0 = torch.randn(1, latent_dim, generator=rng, device=x.device, dtype=x.dtype)
        z = z0.expand(x.shape[0], latent_dim).clone().requires_grad_(True)
        with torch.no_grad():
            _, f_x = discriminator(x)
        opt = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            loss, _, _ = mapping_loss(generator, discriminator, x, f_x, z, lam)
            (grad,) = torch.autograd.grad(loss.sum(), z)
            z.grad = grad
            opt.step()
        with torch.no_grad():
            score, _, g = mapping_loss(generator, discriminator, x, f_x, z, lam)
    return score, g
