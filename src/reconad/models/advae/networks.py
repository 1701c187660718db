"""adVAE's networks: encoder E (x -> mean and log-variance of z), generator G (z -> x) and
Gaussian transformer T ((mu, log sigma^2) of z -> those of an "anomalous" z_T)."""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.advae.config import AdVAEConfig
from reconad.models.gan import ImageEncoder, ImageGenerator, image_plan, mlp, reinitialise

LOGVAR_RANGE = (-10.0, 10.0)


class GaussianEncoder(nn.Module):
    """x -> (mu, logvar) of q(z|x): a conv encoder (images) or an MLP with ReLU (rows)."""

    def __init__(self, cfg: AdVAEConfig) -> None:
        super().__init__()
        latent = cfg.resolved_latent()
        shape = cfg.input_shape
        assert shape is not None
        if cfg.is_table:
            self.net: nn.Module = mlp([shape[0], *cfg.resolved_hidden(), 2 * latent], activation=nn.ReLU)
        else:
            self.net = ImageEncoder(image_plan(cfg), 2 * latent, norm=cfg.norm)
            reinitialise(self.net, dcgan=False)  # the paper's Kaiming-uniform (PyTorch's default)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.net(x).chunk(2, dim=1)
        return mu, logvar.clamp(*LOGVAR_RANGE)


def build_generator(cfg: AdVAEConfig) -> nn.Module:
    """z -> x: DCGAN's generator (tanh, images) or the mirrored MLP with ReLU (rows)."""
    latent = cfg.resolved_latent()
    shape = cfg.input_shape
    assert shape is not None
    if cfg.is_table:
        return mlp([latent, *reversed(cfg.resolved_hidden()), shape[0]], activation=nn.ReLU)
    net = ImageGenerator(image_plan(cfg), latent, shape[0], norm=cfg.norm)
    reinitialise(net, dcgan=False)  # the paper's Kaiming-uniform (PyTorch's default)
    return net


class GaussianTransformer(nn.Module):
    """(mu, logvar) -> (mu_T, logvar_T): two sigmoid hidden layers of 2k units over the
    concatenated parameters, as the official network."""

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        k2 = 2 * latent_dim
        self.net = mlp([k2, k2, k2, k2], activation=nn.Sigmoid)

    def forward(self, mu: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu_t, logvar_t = self.net(torch.cat([mu, logvar], dim=1)).chunk(2, dim=1)
        return mu_t, logvar_t.clamp(*LOGVAR_RANGE)
