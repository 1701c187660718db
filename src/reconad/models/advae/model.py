"""adVAE (Wang, Du, Lin, Cui, Shen & Yang, Knowledge-Based Systems 190, 2020; arXiv 1903.00904).

A VAE (encoder E: x -> N(mu, sigma^2), generator G: z -> x) with a Gaussian transformer
T: (mu, log sigma^2) -> (mu_T, log sigma_T^2) that synthesises "anomalous" latents
z_T ~ N(mu_T, sigma_T^2) near the normal ones.  With ||.||^2 the squared error summed
over elements (the paper's L_MSE), KL(mu, sigma) = KL(N(mu, sigma^2) || N(0, I)) and
[.]^+ = max(0, .), each batch takes two steps, as the paper's Algorithm 1:

step 1, E frozen (its codes detached), G and T on ``L_T + lam·L_G`` (eqs. 6-9):

    L_G = ||x - G(z)||^2 + gamma·KL(E(G(z)))                         (L_G^z)
        + [m_x - ||G(z) - G(z_T)||^2]^+ + gamma·[m_z - KL(E(G(z_T)))]^+  (L_G^zT)
    L_T = KL(N(mu, sigma^2) || N(mu_T, sigma_T^2))

step 2, G and T frozen, E on (eq. 10)

    L_E = ||x - G(z)||^2 + lam·KL(E(x))
        + gamma·[m_z - KL(E(G(z)))]^+ + gamma·[m_z - KL(E(G(z_T)))]^+

(the reconstructions E judges are detached, our reading of where Algorithm 1 stops
gradients; the first term reaches E through G).
Score (eqs. 11-12): s = ||x - mean_l G(mu + sigma·eps_l)||^2 over L draws eps_l; map:
the squared residual of that mean reconstruction (channel mean, [0, 1] image units).
The paper's threshold, a KDE of the normal scores, is ``Detector(..., calibration="kde")``.

Official settings (paper §4.3, Fig. 9): Adam lr 1e-3 (default betas), batch 128, at most
20000 iterations, m_x = 2, m_z between 20 and 40 (30 here), gamma = 0.01 (the robustness
study's fixed value; §4.3 says 0.001), L = 1000; fully connected networks whose widths
follow dim(x) (the official repository, which publishes the networks and the KDE
threshold but no training code: E and G with two hidden layers of dim(x)/2, ReLU; T two
sigmoid layers of 2·dim(z) over the concatenated (mu, log sigma^2)); PyTorch's default
(Kaiming-uniform) initialisation for every network, the image ones included.

Deviations: lam = 1 (the paper's Table 2 value was not available to us; 1 is the plain
VAE's); training runs for ``epochs`` (default 50), not a count of iterations, and keeps
the last epoch (``monitor="none"``: nothing in the paper selects an epoch); rows are
z-scored by the library's ``RowScaler`` and G has no output activation (the official
code min-max scales and ends in a sigmoid); log-variances are clamped to [-10, 10].
The paper has no image networks: images use the library's DCGAN-style conv encoder and
generator (tanh, [-1, 1]) without normalisation (``norm``), for 28-256 px.  The L score
draws are fixed at construction from ``score_seed`` and shared by every input, so an
input's score does not depend on its batch, and the scoring graph exports; L = 16 by
default for images (1000 decoder passes per image would be slow).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.advae.config import AdVAEConfig
from reconad.models.advae.networks import GaussianEncoder, GaussianTransformer, build_generator
from reconad.models.gan import AdversarialModel

#: most output numbers one generator call produces while scoring (bounds the memory of L draws)
SCORE_CHUNK_ELEMENTS = 2**22


def sample(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma·eps with eps from torch's global RNG (the reparameterisation trick)."""
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


def kl_to_prior(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) per sample, (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1.0).sum(dim=1)


def kl_between(mu: torch.Tensor, logvar: torch.Tensor, mu_t: torch.Tensor, logvar_t: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(mu_T, sigma_T^2)) per sample, (B,): the transformer's loss L_T."""
    ratio = (logvar.exp() + (mu - mu_t).pow(2)) / logvar_t.exp()
    return 0.5 * (logvar_t - logvar + ratio - 1.0).sum(dim=1)


def squared_error(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """||a - b||^2 summed over every non-batch axis, (B,): the paper's L_MSE."""
    return (a - b).pow(2).flatten(1).sum(dim=1)


@contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Parameters of ``modules`` get no gradients inside (gradients still flow through them)."""
    params = [p for m in modules for p in m.parameters()]
    before = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(params, before):
            p.requires_grad_(flag)


class AdVAE(AdversarialModel):
    name = "advae"
    input_kinds = ("image", "table")
    #: the paper's batch and learning rate; GAN-style: no early stopping, the last epoch is kept
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 128, "epochs": 50, "lr": 1e-3, "patience": None}

    config: AdVAEConfig
    score_noise: torch.Tensor

    def __init__(self, config: AdVAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or AdVAEConfig(**kwargs))
        c = self.config
        latent = c.resolved_latent()
        self.encoder = GaussianEncoder(c)
        self.generator = build_generator(c)
        self.transformer = GaussianTransformer(latent)
        noise = torch.randn(c.resolved_samples(), latent, generator=torch.Generator().manual_seed(c.score_seed))
        self.register_buffer("score_noise", noise, persistent=False)  # rebuilt from the config

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        gt = [*self.generator.parameters(), *self.transformer.parameters()]
        return {
            "gt": self.spec(gt, c.lr_g, c.betas_g),
            "e": self.spec(self.encoder.parameters(), c.lr_d, c.betas_d),
        }

    # ------------------------------------------------------------------ training
    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        x = self.inputs(batch)
        logs = self._generator_step(x, ctx)
        logs.update(self._encoder_step(x, ctx))
        return StepOutput(logs["loss_e"], logs)

    def _generator_step(self, x: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """Step 1: G and T against each other, E frozen (eqs. 6-9)."""
        c = self.config
        with torch.no_grad():
            mu, logvar = self.encoder(x)
        mu_t, logvar_t = self.transformer(mu, logvar)
        x_r = self.generator(sample(mu, logvar))
        x_tr = self.generator(sample(mu_t, logvar_t))
        with frozen(self.encoder):
            kl_r = kl_to_prior(*self.encoder(x_r))
            kl_tr = kl_to_prior(*self.encoder(x_tr))
        rec = squared_error(x, x_r)
        l_gz = rec + c.gamma * kl_r
        l_gzt = F.relu(c.m_x - squared_error(x_r, x_tr)) + c.gamma * F.relu(c.m_z - kl_tr)
        l_t = kl_between(mu, logvar, mu_t, logvar_t)
        loss = (l_t + c.lam * (l_gz + l_gzt)).mean()
        return {
            "loss_gt": ctx.step("gt", loss),
            "l_t": float(l_t.detach().mean()),
            "l_g": float((l_gz + l_gzt).detach().mean()),
        }

    def _encoder_step(self, x: torch.Tensor, ctx: StepContext) -> dict[str, float]:
        """Step 2: E as the discriminator of G's outputs, G and T frozen (eq. 10)."""
        c = self.config
        mu, logvar = self.encoder(x)
        with frozen(self.generator):
            x_r = self.generator(sample(mu, logvar))  # the reconstruction term reaches E through G
        with torch.no_grad():
            mu_t, logvar_t = self.transformer(mu, logvar)
            x_tr = self.generator(sample(mu_t, logvar_t))
        kl = kl_to_prior(mu, logvar)
        kl_r = kl_to_prior(*self.encoder(x_r.detach()))
        kl_tr = kl_to_prior(*self.encoder(x_tr))
        rec = squared_error(x, x_r)
        loss = (rec + c.lam * kl + c.gamma * (F.relu(c.m_z - kl_r) + F.relu(c.m_z - kl_tr))).mean()
        return {
            "loss_e": ctx.step("e", loss),
            "rec": float(rec.detach().mean()),
            "kl": float(kl.detach().mean()),
            "kl_fake": float(kl_tr.detach().mean()),
        }

    # ------------------------------------------------------------------- scoring
    def mean_reconstruction(self, x: torch.Tensor) -> torch.Tensor:
        """mean_l G(mu + sigma·eps_l) over the L fixed draws ``score_noise`` (eq. 11)."""
        mu, logvar = self.encoder(x)
        std = (0.5 * logvar).exp()
        noise = self.score_noise.to(dtype=mu.dtype)
        per_call = max(1, SCORE_CHUNK_ELEMENTS // max(1, x.numel()))
        total = torch.zeros_like(x)
        for start in range(0, noise.shape[0], per_call):
            eps = noise[start : start + per_call]
            z = mu.unsqueeze(0) + std.unsqueeze(0) * eps.unsqueeze(1)  # (m, B, k)
            total = total + self.generator(z.flatten(0, 1)).view(eps.shape[0], *x.shape).sum(dim=0)
        return total / noise.shape[0]

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        err = self.residual(x, self.mean_reconstruction(x)).pow(2)
        return err.flatten(1).sum(dim=1), err
