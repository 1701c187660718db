"""Variational autoencoder, scored by a Monte-Carlo estimate of the negative ELBO.

Model: q(z|x) = N(mu(x), diag sigma_q(x)^2), p(z) = N(0, I), and
p(x|z) = N(x_hat(z), sigma^2 I) with ONE learned scalar sigma (a "sigma-VAE": the
data decide how reconstruction and KL are weighted, instead of a fixed sigma that
is wrong for images in [0, 1] and for standardised rows alike).  Training
minimises the negative ELBO with one sample (reparameterised) and the analytic KL,
divided by the number of input elements D.

Score, with L = ``n_samples`` draws z_l ~ q(z|x):

    s_reconst = 1/L sum_l sum_j (x_j - x_hat_j(z_l))^2 / (2 sigma^2)
    s_kl      = 1/L sum_l [log q(z_l|x) - log p(z_l)]
    s         = s_kl + s_reconst

i.e. the negative ELBO estimated over L samples (the terms D·log sigma and the
Gaussian constants are the same for every input and dropped).  The pixel map is
1/L sum_l (x - x_hat(z_l))^2, mean over channels.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from reconad.models.networks import VectorDecoder, VectorEncoder
from reconad.models.reconstruction import ReconstructionModel
from reconad.models.vae.config import VAEConfig

_LOG_2PI = math.log(2 * math.pi)


def _log_normal(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (_LOG_2PI + logvar + (z - mu) ** 2 / logvar.exp()).sum(dim=-1)


class VAE(ReconstructionModel):
    name = "vae"

    def __init__(self, config: VAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or VAEConfig(**kwargs))
        self.latent = self.config.resolved_latent()
        self.encoder = VectorEncoder(self.config, 2 * self.latent)
        self.decoder = VectorDecoder(self.config, self.latent)
        self.log_sigma = torch.nn.Parameter(torch.zeros(()))

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-10.0, 10.0)

    def _sigma2(self) -> torch.Tensor:
        return (2 * self.log_sigma.clamp(min=math.log(1e-3))).exp()

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        mu, logvar = self.posterior(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)
        x_hat = self.decoder(z)
        d = x[0].numel()
        nll = ((x - x_hat) ** 2).flatten(1).sum(1) / (2 * self._sigma2()) + d * self.log_sigma.clamp(min=math.log(1e-3))
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1)
        return ((nll + kl) / d).mean()

    def export_blocker(self) -> str | None:
        """The score's latent draws come from a seeded generator at scoring time, which a
        traced ONNX graph turns into an unseeded random node."""
        return super().export_blocker() or (
            f"its score averages {self.config.n_samples} latent draws from a seeded random generator, "
            "which one ONNX graph cannot reproduce"
        )

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.posterior(x)
        n = self.config.n_samples
        # One block of L draws shared by every image of the batch: an image's score then
        # depends on that image only, never on its batch or its place in it.
        gen = torch.Generator(device=x.device).manual_seed(self.config.score_seed)
        eps = torch.randn((n, 1, mu.shape[1]), generator=gen, device=x.device, dtype=mu.dtype)
        z = mu.unsqueeze(0) + (0.5 * logvar).exp().unsqueeze(0) * eps  # (L, B, k)
        zero = torch.zeros_like(z)
        s_kl = (_log_normal(z, mu.unsqueeze(0), logvar.unsqueeze(0)) - _log_normal(z, zero, zero)).mean(0)
        x_hat = self.decoder(z.flatten(0, 1)).view(n, *x.shape)
        err = ((x.unsqueeze(0) - x_hat) ** 2).mean(0)
        s_rec = err.flatten(1).sum(1) / (2 * self._sigma2())
        return s_kl + s_rec, err
