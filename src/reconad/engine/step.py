"""A training step's plumbing: what it is given (:class:`StepContext`: the optimisers by
name and ``step()``), what it returns (:class:`StepOutput`), and the optimisers and
learning-rate schedules the engine builds from each model's :class:`OptimizerSpec`.

The model contract (``reconad.models.base``) speaks in these names; the engine builds and
drives them without knowing any model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from reconad.errors import TrainingError

if TYPE_CHECKING:
    from reconad.engine.config import TrainConfig


@dataclass
class StepOutput:
    """What one training step returns: the main loss (logged as ``loss``) and more values."""

    loss: float | torch.Tensor
    logs: dict[str, float] = field(default_factory=dict)


@dataclass
class OptimizerSpec:
    """One optimiser a model asks for; ``None`` fields take the engine's ``TrainConfig``."""

    params: Iterable[nn.Parameter]
    lr: float | None = None
    betas: tuple[float, float] | None = None
    weight_decay: float | None = None
    optimizer: str | None = None
    scheduler: str | None = None
    grad_clip: float | None = None


class StepContext:
    """What a training step may use: optimisers by name, epoch, step, counters, ``step()``.

    ``counters`` is a dict of ints the model owns (e.g. critic steps for an n-critic
    schedule); the engine saves it in every checkpoint and restores it on resume.
    ``epochs`` is the number of epochs the run is planned for (a model that trains in
    phases, e.g. f-AnoGAN's GAN then encoder, splits them by it).
    """

    def __init__(
        self,
        optimizers: dict[str, torch.optim.Optimizer],
        sync_gradients: Callable[[list[nn.Parameter]], None],
        grad_clip: dict[str, float | None],
        counters: dict[str, int],
    ) -> None:
        self.optimizers = optimizers
        self.sync_gradients = sync_gradients
        self.grad_clip = grad_clip
        self.counters = counters
        self.epoch = 0
        self.epochs = 0
        self.global_step = 0

    def params(self, name: str) -> list[nn.Parameter]:
        return [p for group in self.optimizer(name).param_groups for p in group["params"]]

    def optimizer(self, name: str) -> torch.optim.Optimizer:
        if name not in self.optimizers:
            raise KeyError(f"no optimiser {name!r}; the model declared {', '.join(self.optimizers)}")
        return self.optimizers[name]

    def check_finite(self, name: str, loss: torch.Tensor) -> float:
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingError(
                f"the loss of optimiser {name!r} became {value} at epoch {self.epoch + 1}, step "
                f"{self.global_step + 1}; try a lower learning rate for it"
            )
        return value

    def step(self, name: str, loss: torch.Tensor, retain_graph: bool = False) -> float:
        """Back-propagate ``loss`` into optimiser ``name``'s parameters and step it; the loss's value.

        The optimiser's gradients are cleared first, so gradients another network's
        loss left on these parameters never leak into this update.
        """
        opt = self.optimizer(name)
        value = self.check_finite(name, loss)
        opt.zero_grad(set_to_none=True)
        loss.backward(retain_graph=retain_graph)
        params = self.params(name)
        self.sync_gradients(params)
        clip = self.grad_clip.get(name)
        if clip:
            nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        return value


def build_optimizer(spec: OptimizerSpec, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser ``spec`` asks for, with the engine's settings where it leaves them open."""
    params = [p for p in spec.params if p.requires_grad]
    kind = spec.optimizer or config.optimizer
    lr = config.lr if spec.lr is None else spec.lr
    wd = config.weight_decay if spec.weight_decay is None else spec.weight_decay
    b1, b2 = config.betas if spec.betas is None else spec.betas
    betas = (float(b1), float(b2))
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=wd)
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=betas, weight_decay=wd)
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)


def build_scheduler(
    name: str, optimizer: torch.optim.Optimizer, epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch learning-rate schedule: ``none``, ``cosine`` (to 0 over ``epochs``) or
    ``step`` (x0.1 after each third of the epochs)."""
    if name == "none":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
