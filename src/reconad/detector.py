"""The one facade: ``Detector("hfr", **config)`` with a scikit-learn-like API."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

import reconad
from reconad.data.inputs import as_image_dataset
from reconad.data.records import ImageBatch, collate_images
from reconad.engine import TrainConfig, Trainer, TrainHistory
from reconad.engine.device import select_device
from reconad.engine.progress import progress
from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.models import AnomalyModel, build_model, model_config_fields, model_entry
from reconad.serialization import read_model_dir, write_model_dir

log = logging.getLogger("reconad")

#: Detector-level settings (neither the model's nor the engine's).
DETECTOR_DEFAULTS: dict[str, Any] = {
    "image_size": 256,
    "resize_mode": "resize",
    "val_fraction": 0.1,
    "threshold_quantile": 0.99,
}


class Detector:
    """Train an anomaly model on normal data, then score, map and flag new data.

    >>> det = Detector("hfr", epochs=20).fit("good_images/")
    >>> scores = det.decision_function(["part1.png"])   # higher = more anomalous
    >>> maps = det.anomaly_map(["part1.png"])            # (N, H, W)
    >>> flags = det.predict(["part1.png"])               # 1 = anomalous
    >>> det.save("model/"); det = Detector.load("model/")

    Keyword arguments are split three ways: the model's own settings (e.g.
    ``backbone``, ``score``), the engine's (``epochs``, ``batch_size``, ``lr``,
    ``seed``, ``device``, ``patience``…) and the detector's (``image_size``,
    ``resize_mode``, ``val_fraction``, ``threshold_quantile``).  An unknown name is an
    error, so a typo never goes unnoticed.
    """

    def __init__(self, model: str = "hfr", **config: Any) -> None:
        model_entry(model)  # validates the name
        self.model_name = model.lower()
        model_keys = model_config_fields(self.model_name)
        train_keys = TrainConfig.field_names()
        unknown = set(config) - model_keys - train_keys - set(DETECTOR_DEFAULTS)
        if unknown:
            raise ConfigError(
                f"unknown option(s) for {self.model_name}: {', '.join(sorted(unknown))}"
            )
        self.model_config = {k: v for k, v in config.items() if k in model_keys}
        self.train_config = TrainConfig.from_dict({k: v for k, v in config.items() if k in train_keys})
        self.settings = dict(DETECTOR_DEFAULTS)
        self.settings.update({k: v for k, v in config.items() if k in DETECTOR_DEFAULTS})
        if int(self.settings["image_size"]) < 32:
            raise ConfigError(f"image_size must be >= 32, got {self.settings['image_size']}")
        if not 0 <= float(self.settings["val_fraction"]) < 1:
            raise ConfigError("val_fraction must be in [0, 1)")
        if not 0 < float(self.settings["threshold_quantile"]) <= 1:
            raise ConfigError("threshold_quantile must be in (0, 1]")
        self.model: AnomalyModel | None = None
        self.threshold: float | None = None
        self.val_scores: np.ndarray | None = None
        self.history: TrainHistory | None = None
        self._device = select_device(self.train_config.device)

    # ----------------------------------------------------------------- training
    def _dataset(self, data: Any) -> Dataset:
        return as_image_dataset(data, int(self.settings["image_size"]), str(self.settings["resize_mode"]))

    def fit(
        self,
        data: Any,
        y: Any = None,
        val_data: Any = None,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> "Detector":
        """Train on normal data.

        ``data``: a Dataset of ``ImageItem``, an image array/tensor, a folder or a list
        of image paths.  ``y`` (1 = known anomaly) is accepted for API symmetry with
        semi-supervised models; this model trains on normal data only and refuses
        labelled anomalies.  ``val_data``: held-out normal data for early stopping and
        the threshold; when absent, ``val_fraction`` of ``data`` is held out.
        """
        train = self._dataset(data)
        if len(train) == 0:
            raise DataError("the training set is empty")
        if y is not None and np.asarray(y).astype(int).any():
            raise ConfigError(
                f"model {self.model_name} trains on normal data only; y marks "
                f"{int(np.asarray(y).astype(int).sum())} anomalies: drop them or use a semi-supervised model"
            )
        if val_data is not None:
            val = self._dataset(val_data)
        elif float(self.settings["val_fraction"]) > 0 and len(train) >= 10:
            from reconad.data import split_holdout

            train, val = split_holdout(train, float(self.settings["val_fraction"]), self.train_config.seed)
        else:
            val = None
        torch.manual_seed(self.train_config.seed)
        self.model = build_model(self.model_name, **self.model_config)
        trainer = Trainer(self.train_config, checkpoint_dir=checkpoint_dir, resume=resume)
        self.history = trainer.fit(self.model, train, val)
        self._device = trainer.device
        calib = val if val is not None and len(val) else train
        if calib is train:
            warnings.warn("no held-out normal data: the threshold comes from training scores and will be optimistic",
                          stacklevel=2)
        self.val_scores = self.decision_function(calib)
        self.threshold = float(np.quantile(self.val_scores, float(self.settings["threshold_quantile"])))
        return self

    # ------------------------------------------------------------------ scoring
    def _require_model(self) -> AnomalyModel:
        if self.model is None:
            raise ConfigError("this Detector is not fitted yet: call fit() or Detector.load()")
        return self.model

    @torch.inference_mode()
    def _run(self, data: Any, want_maps: bool, batch_size: int | None = None,
             on_batch: Callable[[ImageBatch], None] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        model = self._require_model()
        if batch_size is None:
            # On CPU large batches run slower per image (activations fall out of cache;
            # BENCHMARKS.md, speed): small batches there, larger ones on a GPU.
            batch_size = 16 if self._device.type == "cuda" else 4
        model.eval()
        ds = self._dataset(data)
        if len(ds) == 0:
            raise DataError("no images to score")
        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate_images)
        scores, maps = [], []
        show = self.train_config.progress and len(ds) > 4 * batch_size
        for batch in progress(loader, enabled=show, desc="scoring", unit="batch"):
            if on_batch is not None:
                on_batch(batch)
            s, m = model(batch.image.to(self._device))
            scores.append(s.float().cpu().numpy())
            if want_maps:
                maps.append(m.float().cpu().numpy())
        return np.concatenate(scores), (np.concatenate(maps) if want_maps else None)

    def decision_function(self, images: Any) -> np.ndarray:
        """Anomaly score per image (higher = more anomalous)."""
        return self._run(images, want_maps=False)[0]

    def anomaly_map(self, images: Any) -> np.ndarray:
        """Pixel anomaly maps (N, H, W) at ``image_size`` resolution."""
        return self._run(images, want_maps=True)[1]  # type: ignore[return-value]

    def score_and_map(self, images: Any, on_batch: Callable[[ImageBatch], None] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and maps in one pass; ``on_batch`` sees each input batch (labels, masks)."""
        s, m = self._run(images, want_maps=True, on_batch=on_batch)
        return s, m  # type: ignore[return-value]

    def predict(self, images: Any) -> np.ndarray:
        """1 where the score exceeds the threshold learnt from held-out normal scores."""
        if self.threshold is None:
            raise ConfigError("no threshold: fit() the Detector first")
        return (self.decision_function(images) > self.threshold).astype(int)

    # ------------------------------------------------------------- persistence
    def get_config(self) -> dict[str, Any]:
        model_cfg = self.model.config.to_dict() if self.model is not None else dict(self.model_config)  # type: ignore[union-attr]
        return {
            "reconad_version": reconad.__version__,
            "model": self.model_name,
            "model_config": model_cfg,
            "train_config": self.train_config.to_dict(),
            "detector": dict(self.settings),
            "threshold": self.threshold,
            "val_scores": None if self.val_scores is None else [float(s) for s in self.val_scores],
            "history": None if self.history is None else self.history.to_dict(),
        }

    def save(self, directory: str | os.PathLike) -> Path:
        model = self._require_model()
        return write_model_dir(directory, model.trainable_state_dict(), self.get_config())

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | None = None) -> "Detector":
        """Load a model directory written by :meth:`save`; refuses tampered or foreign files."""
        state, cfg = read_model_dir(directory)
        try:
            train_cfg = dict(cfg.get("train_config") or {})
            if device is not None:
                train_cfg["device"] = device
            elif train_cfg.get("device", "auto") not in ("auto", "cpu") and not torch.cuda.is_available():
                train_cfg["device"] = "cpu"
            det = cls(cfg["model"], **cfg.get("model_config", {}), **train_cfg, **cfg.get("detector", {}))
            det.model = build_model(det.model_name, **det.model_config)
            det.model.load_trainable_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(f"{directory}: model file does not match its config: {exc}") from exc
        det.model.to(det._device).eval()
        det.threshold = cfg.get("threshold")
        vs = cfg.get("val_scores")
        det.val_scores = None if vs is None else np.asarray(vs, dtype=np.float64)
        hist = cfg.get("history")
        if hist:
            det.history = TrainHistory(**{k: v for k, v in hist.items() if k in TrainHistory.__dataclass_fields__})
        return det

    def __repr__(self) -> str:
        state = "fitted" if self.model is not None else "not fitted"
        return f"Detector({self.model_name!r}, {state})"
