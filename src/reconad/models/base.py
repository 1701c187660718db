"""The contract between a model and the engine, the Detector and the exporter.

A model is an ``nn.Module`` that knows its networks, its losses and its scoring, and
nothing about files, command lines or devices.  This page is the whole contract.

Training (called by :class:`reconad.engine.Trainer`, in this order)

``prepare_data(dataset, device, progress)``
    The dataset the model actually trains on (e.g. cached encoder features).
``collate_fn()``
    How items become one batch record (``reconad.data.records``: ``ImageBatch``,
    ``RowBatch``, ``FeatureBatch``, ``ClipBatch``); the engine counts samples with the
    record's ``num_samples``.  Every method below that takes ``batch`` is typed with
    their union, ``reconad.data.records.Batch``, and narrows it itself (a ``TypeError``
    for a kind the model does not take).
``optimizer_specs()``
    ``{name: OptimizerSpec}`` (``reconad.engine.step``): the parameters of each optimiser
    and, where the model wants its own, its learning rate, Adam betas, weight decay,
    scheduler and gradient clipping.  Anything left ``None`` comes from the engine's
    ``TrainConfig`` (``lr``, ``betas``, ``weight_decay``, ``optimizer``, ``scheduler``,
    ``grad_clip``).  Default: one optimiser ``"main"`` over every trainable parameter.
``training_step(batch, ctx) -> StepOutput``
    One batch.  ``ctx`` (``StepContext``; it and ``StepOutput`` live in
    ``reconad.engine.step``, the engine's side of this contract) holds the optimisers by
    name, the epoch, the global step, the model's own step counters (saved in every
    checkpoint) and ``ctx.step(name, loss)``, which back-propagates ``loss``, averages the gradients of
    that optimiser's parameters across processes (torchrun), clips them with that
    optimiser's setting and steps it.  A single-optimiser model keeps two lines::

        def training_step(self, batch, ctx):
            return StepOutput(ctx.step("main", self.training_loss(batch)))

    (that is the default, given ``training_loss``).  Adversarial models call
    ``ctx.step`` once per network they update and return every loss in ``logs``.
    The engine averages ``loss`` and every key of ``logs`` over the epoch and keeps
    them in the training history and the progress bar.
``validation_step(batch) -> dict[str, float]``
    Losses on held-out normal data, without gradients; logged with a ``val_`` prefix.
    Default: ``{"loss": training_loss(batch)}``.
``default_monitor``
    Which logged value picks the best epoch: ``"auto"`` (``val_loss`` when there is
    held-out data, else ``loss``), a logged key, or ``"none"``: no early stopping and
    no best-epoch restore, the last epoch is kept (what GANs want: their losses say
    little about quality).  ``TrainConfig.monitor`` overrides it.
``on_fit_end(train_data, val_data, device)``
    Once after training (e.g. fit a score normalisation on held-out normals).

Scoring (the one entry the Detector, the exporter and every benchmark call)

``predict_step(batch) -> ScoreOutput``
    ``scores`` (B,), higher = more anomalous, and ``maps`` (B, H, W) for images or
    ``None`` for table rows.  ``data_kind`` says what the fitted model takes
    (``"image"`` or ``"table"``); ``export_blocker()`` says why the scoring path cannot
    be exported as one graph (None when it can); ``input_normalisation()`` describes a
    normalisation the graph applies itself (for the export's metadata).

Persistence: ``trainable_state_dict()`` / ``load_trainable_state_dict()``; frozen
pretrained parts (``frozen_prefixes``) are rebuilt from the config instead of saved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import Dataset

from reconad.data.records import Batch, ImageBatch, collate_images
from reconad.engine.config import Settings
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput


@dataclass
class ModelConfig(Settings):
    """Base of every model's settings dataclass: plain JSON-able fields."""

    #: For a field whose default changed after models were saved without it: the value
    #: such an older model file was trained with (a saved file records every field).
    legacy_values: ClassVar[dict[str, Any]] = {}

    @classmethod
    def saved_options(cls, saved: Mapping[str, Any]) -> dict[str, Any]:
        """The options a saved ``model_config`` rebuilds its model with."""
        return {**cls.legacy_values, **saved}


@dataclass
class ScoreOutput:
    """Image or row scores (B,), higher = more anomalous; pixel maps (B, H, W) or None."""

    scores: torch.Tensor
    maps: torch.Tensor | None = None

    def __iter__(self) -> Iterator[torch.Tensor | None]:
        """``scores, maps = model.predict_step(batch)`` reads naturally."""
        return iter((self.scores, self.maps))


def scores_streams(model: Any) -> bool:
    """Whether a model (or its class) scores video frame by frame with a state
    (``score_sequence`` / ``stream``, e.g. motion_knn), rather than whole windows or images."""
    return callable(getattr(model, "score_sequence", None))


class AnomalyModel(nn.Module):
    """Base class of every model; see the module docstring for the contract."""

    name: ClassVar[str] = "base"
    #: state-dict key prefixes that are not saved (frozen pretrained parts).
    frozen_prefixes: ClassVar[tuple[str, ...]] = ()
    #: what the Detector may feed it: "image" batches and/or "table" rows.
    input_kinds: ClassVar[tuple[str, ...]] = ("image",)
    #: smallest ``image_size`` the model works at.
    min_image_size: ClassVar[int] = 32
    #: True when training uses the labels (1 = known anomaly); others refuse labelled anomalies.
    uses_labels: ClassVar[bool] = False
    #: the options under which a model that is not ``uses_labels`` does learn from labels
    #: (cavga's ``{"variant": "w"}``); empty: under none.
    labels_with: ClassVar[dict[str, Any]] = {}
    #: engine settings (TrainConfig fields) this model suggests; the user's always win.
    train_defaults: ClassVar[dict[str, Any]] = {}
    #: batch size the Detector scores with (None: its own device-dependent default).
    inference_batch_size: ClassVar[int | None] = None
    #: which logged value picks the best epoch ("auto", a logged key, or "none").
    default_monitor: ClassVar[str] = "auto"
    #: named sets of model options (``Detector(name, preset=...)``); given options win.
    presets: ClassVar[dict[str, dict[str, Any]]] = {}
    #: On CPU, scoring runs in micro-batches of at most this many input pixels (None:
    #: never split).  Large batches of large images fall out of the CPU caches.
    cpu_micro_batch_pixels: int | None = None

    config: Any

    @classmethod
    def uses_labels_for(cls, options: Mapping[str, Any]) -> bool:
        """Whether a model built with ``options`` trains on labelled anomalies: ``uses_labels``,
        or ``options`` holding every value of ``labels_with`` (e.g. cavga's ``variant="w"``)."""
        if cls.uses_labels:
            return True
        return bool(cls.labels_with) and all(str(options.get(k)) == str(v) for k, v in cls.labels_with.items())

    # ------------------------------------------------------------------ training
    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        return dataset

    def collate_fn(self) -> Callable[[list[Any]], Batch]:
        return collate_images

    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {"main": OptimizerSpec(self.parameters())}

    def training_loss(self, batch: Batch) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} defines neither training_step nor training_loss")

    def training_step(self, batch: Batch, ctx: StepContext) -> StepOutput:
        return StepOutput(ctx.step("main", self.training_loss(batch)))

    @torch.no_grad()
    def validation_step(self, batch: Batch) -> dict[str, float]:
        return {"loss": float(self.training_loss(batch))}

    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """Called once after training (e.g. to fit score normalisation)."""

    # ------------------------------------------------------------------- scoring
    def predict_step(self, batch: Batch) -> ScoreOutput:
        raise NotImplementedError(f"{type(self).__name__} does not define predict_step")

    @property
    def data_kind(self) -> str:
        """What this (fitted) model scores: ``"image"`` or ``"table"``."""
        return self.input_kinds[0]

    def export_blocker(self) -> str | None:
        """Why the scoring path cannot be exported as one graph; None when it can."""
        if self.data_kind != "image":
            return f"{self.name} was trained on table rows; export takes image models"
        return None

    def input_normalisation(self) -> dict[str, list[float]] | None:
        """Mean/std the scoring graph applies to its [0, 1] input itself (None: none)."""
        return None

    def micro_batch(self, images: torch.Tensor) -> int | None:
        """Images per CPU micro-batch for this input, or None to score it whole."""
        budget = self.cpu_micro_batch_pixels
        if not budget or images.device.type != "cpu" or self.training:
            return None
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
            return None
        chunk = max(1, budget // (int(images.shape[-2]) * int(images.shape[-1])))
        return chunk if images.shape[0] > chunk else None

    def score_images(self, images: torch.Tensor) -> ScoreOutput:
        """``predict_step`` on a bare image tensor (B, 3, H, W) in [0, 1]."""
        return self.predict_step(ImageBatch.of(images))

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
