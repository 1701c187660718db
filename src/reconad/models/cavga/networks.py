"""CAVGA's networks and its Grad-CAM attention.

Encoder: DCGAN's conv trunk to a feature map F (B, C, h, w) and two 1x1 convolutions to
the mean and log-variance of the convolutional latent z (B, k, h, w); decoder: a 3x3
convolution back to C channels and DCGAN's transposed-conv stack (tanh); discriminator:
DCGAN's; classifier (variant w): one linear layer on the flattened mean of z, two logits
(normal, anomalous).

Grad-CAM (Selvaraju et al. 2017) of a target y on F weights each channel by the spatial
mean of dy/dF: ``A = sigmoid(sum_c alpha_c F_c)``, ``alpha_c = mean_ij dy/dF_cij``.  The
targets here (the sum of z's mean; a class logit of the classifier on it) are linear in
F, so dy/dF does not depend on F and ``alpha`` follows from the weights alone
(:func:`cam_weights`; a test checks it against autograd).  The map therefore needs no
backward pass: it is one forward graph (exportable, and computed under inference mode).
"""

from __future__ import annotations

import torch
from torch import nn

from reconad.models.cavga.config import CAVGAConfig
from reconad.models.gan import ConvPlan, ConvTrunk, ConvUp, ImageDiscriminator, conv_plan, init_dcgan, norm2d

LOGVAR_RANGE = (-10.0, 10.0)


class ConvLatentEncoder(nn.Module):
    """x in [-1, 1] -> (F, mu, logvar): the trunk's last map and z's parameters, (B, k, h, w)."""

    def __init__(self, plan: ConvPlan, latent_channels: int) -> None:
        super().__init__()
        self.trunk = ConvTrunk(plan, "batch")
        self.mu = nn.Conv2d(plan.out_channels, latent_channels, 1)
        self.logvar = nn.Conv2d(plan.out_channels, latent_channels, 1)
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.trunk(x)
        return f, self.mu(f), self.logvar(f).clamp(*LOGVAR_RANGE)


class ConvLatentDecoder(nn.Module):
    """z (B, k, h, w) -> image (B, C, H, W) in [-1, 1]."""

    def __init__(self, plan: ConvPlan, latent_channels: int, out_channels: int) -> None:
        super().__init__()
        c = plan.out_channels
        self.head = nn.Sequential(
            nn.Conv2d(latent_channels, c, 3, padding=1, bias=False), norm2d("batch", c), nn.ReLU()
        )
        self.up = ConvUp(plan, out_channels, "batch")
        init_dcgan(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.up(self.head(z))


class CAVGANetworks(nn.Module):
    """Encoder, decoder, discriminator and (variant w) the classifier of one CAVGA."""

    def __init__(self, cfg: CAVGAConfig) -> None:
        super().__init__()
        shape = cfg.input_shape
        assert shape is not None
        plan = conv_plan(shape[0], shape[1:], cfg.width, cfg.min_size, cfg.min_stages)
        k = cfg.resolved_latent()
        h, w = plan.out_size
        self.encoder = ConvLatentEncoder(plan, k)
        self.decoder = ConvLatentDecoder(plan, k, shape[0])
        self.discriminator = ImageDiscriminator(plan, spectral=cfg.resolved_spectral_norm())
        self.classifier = nn.Linear(k * h * w, 2) if cfg.variant == "w" else None


def cam_weights(mu_head: nn.Conv2d, classifier: nn.Linear | None, target: int | None) -> torch.Tensor:
    """Grad-CAM's channel weights alpha (C,) on the encoder's map F, in closed form.

    ``target=None``: y = sum of z's mean, so dy/dF_c = sum_k W_mu[k, c].  A class index:
    y = that class's logit on the flattened mean of z, so alpha_c = sum_k mean_ij
    W_cls[target, k, i, j] · W_mu[k, c].
    """
    w_mu = mu_head.weight[:, :, 0, 0]  # (k, C)
    if target is None:
        return w_mu.sum(dim=0)
    assert classifier is not None
    k = w_mu.shape[0]
    per_channel = classifier.weight[target].view(k, -1).mean(dim=1)  # (k,)
    return per_channel @ w_mu


def attention(features: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """A = sigmoid(sum_c alpha_c F_c), (B, h, w) in (0, 1)."""
    return torch.sigmoid(torch.einsum("bchw,c->bhw", features, alpha.to(features.dtype)))
