"""The base class of the adversarial models."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from reconad.data.records import Batch, ImageBatch, RowBatch
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.errors import ConfigError
from reconad.models.base import ScoreOutput
from reconad.models.gan.config import GANConfig
from reconad.models.gan.value_range import pixel_residual, to_signed
from reconad.models.reconstruction import ReconstructionModel


def _ema_name(param_name: str) -> str:
    return "ema__" + param_name.replace(".", "__")


class AdversarialModel(ReconstructionModel):
    """Base of the GAN family: images and rows like the reconstruction models, GAN defaults.

    Subclasses build their networks in ``__init__``, implement ``training_step`` (one
    ``ctx.step`` per optimiser they declare in ``optimizer_specs``) and ``score(x)``,
    which returns (scores (B,), an element-wise residual shaped like x in [0, 1] units,
    whose channel mean is the map).  ``x`` is what :meth:`inputs` gives: [-1, 1] images or
    scaled rows.  Held-out normals are scored each epoch (``val_score``, logged only:
    ``monitor="none"`` keeps the last epoch, since a GAN's losses say little about quality).
    """

    config: GANConfig
    #: GAN engine defaults (DCGAN's batch and learning rate); the user's options win.
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 64, "epochs": 15, "lr": 2e-4, "patience": None}
    default_monitor: ClassVar[str] = "none"
    #: set by image-only models (their papers have no table variant)
    image_only: ClassVar[bool] = False
    #: set by models whose training step keeps the weight average (``ema_decay``)
    keeps_weight_average: ClassVar[bool] = False

    def __init__(self, config: GANConfig) -> None:
        if self.image_only and config.is_table:
            raise ConfigError(f"model {self.name} takes images only; for tables use egbad, alad or ganomaly")
        if config.resolved_ema_decay() > 0 and not self.keeps_weight_average:
            raise ConfigError(f"model {self.name} keeps no weight average; ema_decay is for alad and egbad")
        super().__init__(config)

    # ---------------------------------------------------------- weight average
    def track_weight_average(self) -> None:
        """Start the moving average of every weight (``config.resolved_ema_decay()`` > 0); subclasses
        call it once their networks exist.  The averages are buffers, so checkpoints,
        resumes and saved models keep them."""
        if self.config.resolved_ema_decay() <= 0:
            return
        for name, p in self.named_parameters():
            self.register_buffer(_ema_name(name), p.detach().clone())
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update_weight_average(self) -> None:
        """One step of the average, after a training step has updated the weights."""
        if self.config.resolved_ema_decay() <= 0:
            return
        counter = self.get_buffer("ema_updates")
        t = float(counter)
        decay = min(self.config.resolved_ema_decay(), (1.0 + t) / (10.0 + t))
        for name, p in self.named_parameters():
            self.get_buffer(_ema_name(name)).lerp_(p.detach(), 1.0 - decay)
        counter.add_(1)

    @torch.no_grad()
    def use_weight_average(self) -> None:
        """Put the averaged weights in place of the last ones (at the end of training)."""
        if self.config.resolved_ema_decay() <= 0:
            return
        for name, p in self.named_parameters():
            p.copy_(self.get_buffer(_ema_name(name)))

    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        self.use_weight_average()

    # ------------------------------------------------------------------ inputs
    def inputs(self, batch: Batch) -> torch.Tensor:
        """The network input of a batch: [-1, 1] images or scaled rows (shape-checked)."""
        x, _ = self.batch_inputs(batch)
        return x if self.is_table else to_signed(x)

    def residual(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Element-wise |x - x_hat| (images in [0, 1] units, rows in scaled units)."""
        return (x - x_hat).abs() if self.is_table else pixel_residual(x, x_hat)

    def latent_noise(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """z ~ N(0, I) from torch's global RNG (saved and restored with every checkpoint)."""
        return torch.randn(n, self.config.resolved_latent(), device=like.device, dtype=like.dtype)

    # --------------------------------------------------------------- training
    def spec(self, params: Iterable[nn.Parameter], lr: float | None, betas: Sequence[float]) -> OptimizerSpec:
        """An Adam spec with this network's own learning rate (None: the engine's) and betas."""
        return OptimizerSpec(list(params), lr=lr, betas=(float(betas[0]), float(betas[1])))

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        raise NotImplementedError

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> dict[str, float]:
        scores, _ = self.score(self.inputs(batch))
        return {"score": float(scores.mean())}

    # ---------------------------------------------------------------- scoring
    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def predict_step(self, batch: Batch) -> ScoreOutput:
        if not isinstance(batch, (ImageBatch, RowBatch)):
            raise TypeError(f"{self.name} scores images or table rows, got {type(batch).__name__}")
        scores, err = self.score(self.inputs(batch))
        return ScoreOutput(scores, None if self.is_table else err.mean(dim=1))
