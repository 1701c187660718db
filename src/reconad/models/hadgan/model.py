"""HADGAN (Jiang, Li, Xie and Du, "Discriminative reconstruction constrained generative
adversarial network for hyperspectral anomaly detection", IEEE TGRS 58(7), 2020).

An autoencoder on spectra (encoder E, decoder De), trained adversarially in two spaces,
f-AnoGAN / adversarial-autoencoder style:

* a latent discriminator D_z tells codes z = E(x) from samples of N(0, I);
* a spectral discriminator D_x tells real spectra x from reconstructions x_hat = De(E(x));
* the autoencoder minimises ``weight_rec * L_R + weight_latent * L_z + weight_shrink * L_s
  + weight_adv_z * L_adv(D_z(z)) + weight_adv_x * L_adv(D_x(x_hat))`` with
  L_R = mean ||x - x_hat||_2 / 2, the latent consistency L_z = mean ||z - E(De(z))||_2 / 2
  (the constrained AAE's constraint: a reconstruction must encode back to its own code)
  and the shrink term L_s = mean(z^2).

Background dominates every scene, so the network reconstructs background spectra and
leaves anomalies in the residual |x - x_hat|, from which two detectors are built (see
``detectors``): D_spectral (RX on the residual spectra) and D_spatial (area attribute
filtering of the least-energy residual bands, smoothed by a guided filter), fused as
D_SS = lam * D_spatial + (1 - lam) * D_spectral.

Scoring (``predict_step``): a ``SpectrumBatch`` holding a whole scene (``whole_scene``)
gets D_SS per pixel, in [0, 1]; any other batch of spectra (e.g. through
``Detector.decision_function``) gets D_spectral only, since the spatial detector needs
the image.

Where this differs from the paper (as far as it could be read here; the paper itself was
not at hand, only its summary and a public re-implementation):
* E and De step together as one optimiser ``ae`` on the summed loss (the paper updates
  them with their own losses); all four networks use Adam (the paper: RMSprop for E);
* hidden layers default to 256 units and training to 15 epochs of batches of 256 (chosen
  from timings alone, so that the largest scene here, 150x150x188, trains in under five
  minutes on one CPU thread); no dropout on the code;
* the spatial detector's attribute filter is an area opening (skimage) with an area
  threshold of ``area_fraction`` of the scene, and the guided filter is self-guided with
  a 3x3 window; D_spectral uses the residual statistics of the training pixels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from reconad.data.records import Batch, RowBatch, SpectrumBatch, collate_rows
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.errors import ConfigError, DataError
from reconad.models.base import AnomalyModel, ScoreOutput
from reconad.models.hadgan.config import HADGANConfig
from reconad.models.hadgan.detectors import fuse, spatial_detector
from reconad.models.networks import mlp
from reconad.models.rx import gaussian_fit, mahalanobis


def _bn_mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with BatchNorm and LeakyReLU between them, a bias-free linear output."""
    layers: list[nn.Module] = []
    for a, b in zip(dims[:-2], dims[1:-1]):
        layers += [nn.Linear(a, b), nn.BatchNorm1d(b), nn.LeakyReLU(0.2, inplace=True)]
    layers.append(nn.Linear(dims[-2], dims[-1], bias=False))
    return nn.Sequential(*layers)


def _adv(logits: torch.Tensor, real: bool) -> torch.Tensor:
    target = torch.ones_like(logits) if real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def _half_l2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.sqrt(((a - b) ** 2).sum(dim=1) + 1e-8).mean()


class HADGAN(AnomalyModel):
    """See the module docstring."""

    name = "hadgan"
    input_kinds: ClassVar[tuple[str, ...]] = ("table",)
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 15, "batch_size": 256, "lr": 1e-3, "betas": [0.5, 0.999]}
    default_monitor: ClassVar[str] = "none"
    inference_batch_size: ClassVar[int] = 65536

    res_mean: torch.Tensor
    res_precision: torch.Tensor

    def __init__(self, config: HADGANConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = cfg = config or HADGANConfig(**kwargs)
        if cfg.input_shape is None:
            raise ConfigError("model hadgan needs input_shape [bands]; Detector.fit sets it from the spectra")
        b, (h1, h2), z = cfg.input_shape[0], cfg.resolved_hidden(), cfg.resolved_latent()
        self.encoder = _bn_mlp([b, h1, h2, z])
        self.decoder = _bn_mlp([z, h1, h2, b])
        self.disc_z = mlp([z, h1, h2, 1])
        self.disc_x = mlp([b, h1, h2, 1])
        self.register_buffer("res_mean", torch.zeros(b, dtype=torch.float64))
        self.register_buffer("res_precision", torch.eye(b, dtype=torch.float64))

    def collate_fn(self) -> Callable[[list[Any]], Batch]:
        return collate_rows

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        lr_d = self.config.lr_d
        return {
            "ae": OptimizerSpec([*self.encoder.parameters(), *self.decoder.parameters()]),
            "dz": OptimizerSpec(self.disc_z.parameters(), lr=lr_d),
            "dx": OptimizerSpec(self.disc_x.parameters(), lr=lr_d),
        }

    def _inputs(self, batch: Batch) -> torch.Tensor:
        if not isinstance(batch, RowBatch):
            raise TypeError(f"hadgan takes spectra (RowBatch / SpectrumBatch), got {type(batch).__name__}")
        d = int(self.res_mean.shape[0])
        if batch.x.shape[1:] != (d,):
            raise DataError(f"model hadgan was trained on {d} bands, got {list(batch.x.shape[1:])}")
        return batch.x.float()

    def autoencoder_losses(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The autoencoder's terms for spectra ``x``: rec, latent, shrink, adv_z, adv_x."""
        z = self.encoder(x)
        x_hat = self.decoder(z)
        return {
            "rec": _half_l2(x, x_hat),
            "latent": _half_l2(z, self.encoder(self.decoder(z))),
            "shrink": (z**2).mean(),
            "adv_z": _adv(self.disc_z(z), True),
            "adv_x": _adv(self.disc_x(x_hat), True),
        }

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        x, cfg = self._inputs(batch), self.config
        with torch.no_grad():
            z_fake = self.encoder(x)
            x_fake = self.decoder(z_fake)
        z_real = torch.randn_like(z_fake)
        loss_dz = _adv(self.disc_z(z_real), True) + _adv(self.disc_z(z_fake), False)
        logs = {"loss_dz": ctx.step("dz", loss_dz)}
        loss_dx = _adv(self.disc_x(x), True) + _adv(self.disc_x(x_fake), False)
        logs["loss_dx"] = ctx.step("dx", loss_dx)
        t = self.autoencoder_losses(x)
        loss = (
            cfg.weight_rec * t["rec"]
            + cfg.weight_latent * t["latent"]
            + cfg.weight_shrink * t["shrink"]
            + cfg.weight_adv_z * t["adv_z"]
            + cfg.weight_adv_x * t["adv_x"]
        )
        logs["loss_ae"] = ctx.step("ae", loss)
        logs.update({k: float(v.detach()) for k, v in t.items()})
        return StepOutput(logs["rec"], logs)

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> dict[str, float]:
        x = self._inputs(batch)
        return {"loss": float(_half_l2(x, self.decoder(self.encoder(x))))}

    @torch.no_grad()
    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """|x - De(E(x))| of spectra (N, bands)."""
        return (x - self.decoder(self.encoder(x))).abs()

    @torch.no_grad()
    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """Fit D_spectral's background: mean and covariance of the training residuals."""
        self.eval()
        loader = DataLoader(train_data, batch_size=8192, shuffle=False, collate_fn=collate_rows)
        res = torch.cat([self.residual(b.x.to(device).float()).cpu() for b in loader])
        mean, precision = gaussian_fit(res, 1e-6)
        self.res_mean.copy_(mean)
        self.res_precision.copy_(precision)

    @property
    def data_kind(self) -> str:
        return "table"

    @torch.no_grad()
    def detect(self, batch: SpectrumBatch) -> dict[str, np.ndarray]:
        """D_spatial, D_spectral and D_SS maps (H, W) of a whole scene."""
        if not batch.whole_scene:
            raise DataError("the spatial detector needs a whole scene: a SpectrumBatch of every pixel, row-major")
        assert batch.scene_shape is not None
        h, w = batch.scene_shape
        res = self.residual(self._inputs(batch))
        spectral = mahalanobis(res, self.res_mean.to(res.device), self.res_precision.to(res.device))
        cube = res.cpu().numpy().reshape(h, w, -1)
        cfg = self.config
        area = max(1, round(cfg.area_fraction * h * w))
        spatial = spatial_detector(cube, cfg.spatial_bands, area, cfg.guided_radius, cfg.guided_eps)
        spec = spectral.cpu().numpy().reshape(h, w).astype(np.float64)
        return {"spatial": spatial, "spectral": spec, "fused": fuse(spatial, spec, cfg.lam)}

    def predict_step(self, batch: Batch) -> ScoreOutput:
        x = self._inputs(batch)
        if isinstance(batch, SpectrumBatch) and batch.whole_scene:
            fused = self.detect(batch)["fused"].reshape(-1)
            return ScoreOutput(torch.from_numpy(fused).float().to(x.device))
        res = self.residual(x)
        return ScoreOutput(mahalanobis(res, self.res_mean, self.res_precision))
