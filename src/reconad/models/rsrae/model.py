"""RSRAE: autoencoder with a robust subspace recovery layer (Lai, Zou & Lerman, ICLR 2020,
arXiv 1904.00152, "Robust Subspace Recovery Layer for Unsupervised Anomaly Detection").

An encoder maps x to a flat code z (D numbers); the RSR layer, a d x D matrix A, maps
it to z~ = A z (d = 10 numbers), which is put on the unit sphere (``renormalize``) and
decoded to x_hat.  Losses (p = q = 1: norms, not squared):

    L_AE   = sum_i ||x_i - x_hat_i||_2
    L_RSR1 = sum_i ||z_i - A^T A z_i||_2          (codes near the subspace of A)
    L_RSR2 = ||A A^T - I_d||_F^2                   (A^T A a projection)

Sums over a batch are taken as batch means.  ``training="alternating"`` (RSRAE, the
default, as the official code's experiments): per batch one Adam step on L_AE over
encoder, A and decoder at the engine's ``lr`` (2.5e-4), then one on lambda2·L_RSR2 over A
and one on lambda1·L_RSR1 over encoder and A, both at ``lr_rsr`` (2.5e-3, ten times
more).  ``training="joint"`` (RSRAE+): one step on L_AE + lambda1·L_RSR1 + lambda2·L_RSR2.
Score 1 - cos(x, x_hat) (the official experiments') for images, the root of the mean
squared residual for table rows (``score="auto"``; either can be asked for by name: the
cosine ranks large-valued outlier rows as normal, see the config).  Map |x - x_hat|
(channel mean, [0, 1] units).  Images and table rows.

Official defaults: lambda1 = lambda2 = 0.1 (the model's; the experiment script passes
lambda1 = 0.0025, unused by the alternating updates it runs), d = 10, Adam at 2.5e-4
with TensorFlow's betas (0.9, 0.999) (here the engine's ``betas``), the RSR steps at ten
times that, batch 128, 200 epochs, last epoch kept; conv encoder 32 / 64 / 128 channels
(5x5, 5x5, 3x3, stride 2) with batch norm, dense layers 32 / 64 / 128 for vectors;
images scaled to [-1, 1] and tanh activations.

Deviations and choices: the encoder is the library's DCGAN-style stack (4x4 stride-2
stages down to ``min_size``, channels 32, 64, ... capped at 8·width, LeakyReLU; the
decoder ends in tanh), so that 28-256 px images work; rows keep the official widths
with LeakyReLU and no output activation (they are z-scores, not [0, 1] counts).  A
starts with orthonormal rows instead of N(0, 1) entries.  With separate Adam optimisers
a constant weight does not change a step, so lambda1 and lambda2 matter only for
``training="joint"`` (the official alternating code leaves them out).  L_RSR2 is the
paper's squared Frobenius norm (the official code takes the mean of the squares, a
constant factor).  Images are not
L2-normalised one by one before training (the official experiments do; the cosine
score does not depend on the scale).  The official code trains on the unlabelled test
set itself; here it trains on normal data like every model of the library.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from reconad.data.records import Batch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.models.gan import pixel_residual, to_signed
from reconad.models.reconstruction import ReconstructionModel
from reconad.models.rsrae.config import RSRAEConfig
from reconad.models.rsrae.networks import RSRLayer, build_decoder, build_encoder


class RSRAE(ReconstructionModel):
    name = "rsrae"
    input_kinds = ("image", "table")
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 128, "epochs": 200, "lr": 2.5e-4, "patience": None}
    default_monitor = "none"

    config: RSRAEConfig

    def __init__(self, config: RSRAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or RSRAEConfig(**kwargs))
        self.encoder, code_dim = build_encoder(self.config)
        self.rsr = RSRLayer(code_dim, self.config.resolved_latent())
        self.decoder = build_decoder(self.config)

    # ------------------------------------------------------------------ networks
    def network_input(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled rows as they are; [0, 1] images on the [-1, 1] scale of the tanh decoder."""
        return x if self.is_table else to_signed(x)

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(code z, reconstruction x_hat) of network inputs."""
        z = self.encoder(x)
        z_tilde = self.rsr(z)
        if self.config.renormalize:
            z_tilde = F.normalize(z_tilde, dim=1)
        return z, self.decoder(z_tilde)

    # ------------------------------------------------------------------ training
    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        c = self.config
        specs = {"ae": OptimizerSpec(list(self.parameters()))}
        if c.training == "alternating":
            specs["rsr2"] = OptimizerSpec([self.rsr.A], lr=c.lr_rsr)
            specs["rsr1"] = OptimizerSpec([*self.encoder.parameters(), self.rsr.A], lr=c.lr_rsr)
        return specs

    def losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """L_AE, L_RSR1 and L_RSR2 of network inputs (batch means)."""
        z, x_hat = self.reconstruct(x)
        return {
            "l_ae": (x - x_hat).flatten(1).norm(dim=1).mean(),
            "l_rsr1": self.rsr.projection_error(z).mean(),
            "l_rsr2": self.rsr.orthogonality_error(),
        }

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        c = self.config
        x = self.network_input(self.batch_inputs(batch)[0])
        parts = self.losses(x)
        if c.training == "joint":
            loss = parts["l_ae"] + c.lambda1 * parts["l_rsr1"] + c.lambda2 * parts["l_rsr2"]
            logs = {"loss_ae": ctx.step("ae", loss)}
        else:
            logs = {"loss_ae": ctx.step("ae", parts["l_ae"])}
            logs["loss_rsr2"] = ctx.step("rsr2", c.lambda2 * self.rsr.orthogonality_error())
            logs["loss_rsr1"] = ctx.step("rsr1", c.lambda1 * self.rsr.projection_error(self.encoder(x)).mean())
        logs.update({k: float(v.detach()) for k, v in parts.items()})
        return StepOutput(parts["l_ae"].detach(), logs)

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> dict[str, float]:
        x = self.batch_inputs(batch)[0]
        scores, _ = self.score(x)
        return {"loss": float(self.losses(self.network_input(x))["l_ae"]), "score": float(scores.mean())}

    # ------------------------------------------------------------------- scoring
    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores, |x - x_hat|) of scaled rows or [0, 1] images."""
        x_net = self.network_input(x)
        _, x_hat = self.reconstruct(x_net)
        a, b = x_net.flatten(1), x_hat.flatten(1)
        score = self.config.score if self.config.score != "auto" else ("l2" if self.is_table else "cosine")
        if score == "cosine":
            scores = 1.0 - (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + 1e-6)
        else:
            scores = (a - b).pow(2).mean(1).sqrt()
        err = (x_net - x_hat).abs() if self.is_table else pixel_residual(x_net, x_hat)
        return scores, err
