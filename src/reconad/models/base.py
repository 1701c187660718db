"""The contract between a model and the one training engine.

A model is an ``nn.Module`` that knows its loss and its scoring, nothing about files,
command lines or devices.  The engine calls, in order:

``prepare_data(dataset, device)``  -> the dataset it actually trains on (e.g. cached
features); ``configure_optimizers(config)``; for each batch ``fit_batch(batch,
optimizers, sync_gradients)``; ``validation_loss(batch)`` on held-out normal data;
finally ``on_fit_end(train_data, val_data, device)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from reconad.data.records import collate_images
from reconad.engine.config import TrainConfig


def make_optimizer(params, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in params if p.requires_grad]
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


class AnomalyModel(nn.Module):
    """Base class of every model the engine trains."""

    name: ClassVar[str] = "base"
    #: state-dict key prefixes that are not saved (frozen pretrained parts).
    frozen_prefixes: ClassVar[tuple[str, ...]] = ()
    #: what the Detector may feed it: "image" batches and/or "table" rows.
    input_kinds: ClassVar[tuple[str, ...]] = ("image",)
    #: smallest ``image_size`` the model works at.
    min_image_size: ClassVar[int] = 32
    #: True when training uses the labels (1 = known anomaly); others refuse labelled anomalies.
    uses_labels: ClassVar[bool] = False
    #: engine settings (TrainConfig fields) this model suggests; the user's always win.
    train_defaults: ClassVar[dict[str, Any]] = {}
    #: batch size the Detector scores with (None: its own device-dependent default).
    inference_batch_size: ClassVar[int | None] = None

    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        return dataset

    def collate_fn(self) -> Callable[[list[Any]], Any]:
        return collate_images

    def configure_optimizers(self, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {"main": make_optimizer(self.parameters(), config)}

    def training_loss(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def fit_batch(
        self,
        batch: Any,
        optimizers: dict[str, torch.optim.Optimizer],
        sync_gradients: Callable[[nn.Module], None],
        grad_clip: float | None = None,
    ) -> dict[str, float]:
        """One optimisation step; models with several optimisers override this."""
        opt = optimizers["main"]
        opt.zero_grad(set_to_none=True)
        loss = self.training_loss(batch)
        loss.backward()
        sync_gradients(self)
        if grad_clip:
            nn.utils.clip_grad_norm_(self.parameters(), grad_clip)
        opt.step()
        return {"loss": float(loss.detach())}

    @torch.no_grad()
    def validation_loss(self, batch: Any) -> float:
        return float(self.training_loss(batch))

    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """Called once after training (e.g. to fit score normalisation)."""

    # -- persistence of what was learned (frozen parts are rebuilt from config) --
    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        return {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not k.startswith(self.frozen_prefixes)
        }

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        expected = set(self.trainable_state_dict())
        missing = expected - set(state)
        unexpected = set(state) - expected
        if missing or unexpected:
            raise KeyError(
                f"state does not match model {self.name}: missing {sorted(missing)[:5]}, "
                f"unexpected {sorted(unexpected)[:5]}"
            )
        self.load_state_dict(state, strict=False)
