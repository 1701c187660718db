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
from torch.utils.data import DataLoader, Dataset, Subset

import reconad
from reconad.calibration import Calibration
from reconad.data.inputs import as_image_dataset
from reconad.data.labels import LabelledDataset
from reconad.data.table import RowBatch, as_table_dataset, collate_rows, is_table
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
    # Target false-alarm rate on normal data; when set it wins over threshold_quantile.
    "fpr": None,
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
    ``resize_mode``, ``val_fraction``, ``threshold_quantile``, ``fpr``).  An unknown name is an
    error, so a typo never goes unnoticed.

    Table rows (2-D array, tensor, DataFrame) train a model's MLP variant, images its
    convolutional one (models that take tables: ae, vae, memae, esad).  ``fit(data, y)``:
    y = 1 marks a known anomaly; only models with ``uses_labels`` (esad) train on them,
    the others refuse a y with anomalies (ConfigError) instead of silently dropping them.
    """

    def __init__(self, model: str = "hfr", **config: Any) -> None:
        model_entry(model)  # validates the name
        self.model_name = model.lower()
        model_keys = model_config_fields(self.model_name)
        train_keys = TrainConfig.field_names()
        unknown = set(config) - model_keys - train_keys - set(DETECTOR_DEFAULTS)
        if unknown:
            raise ConfigError(f"unknown option(s) for {self.model_name}: {', '.join(sorted(unknown))}")
        self.model_config = {k: v for k, v in config.items() if k in model_keys}
        model_cls = model_entry(self.model_name)[0]
        # The model's suggested engine settings (e.g. a larger batch for small nets); the user's win.
        self.train_config = TrainConfig.from_dict(
            {**model_cls.train_defaults, **{k: v for k, v in config.items() if k in train_keys}}
        )
        self.settings = dict(DETECTOR_DEFAULTS)
        self.settings.update({k: v for k, v in config.items() if k in DETECTOR_DEFAULTS})
        if int(self.settings["image_size"]) < model_cls.min_image_size:
            raise ConfigError(
                f"image_size must be >= {model_cls.min_image_size} for {self.model_name}, "
                f"got {self.settings['image_size']}"
            )
        if not 0 <= float(self.settings["val_fraction"]) < 1:
            raise ConfigError("val_fraction must be in [0, 1)")
        if not 0 < float(self.settings["threshold_quantile"]) <= 1:
            raise ConfigError("threshold_quantile must be in (0, 1]")
        fpr = self.settings["fpr"]
        if fpr is not None and (isinstance(fpr, (bool, str)) or not 0 < float(fpr) < 1):
            raise ConfigError(f"fpr must be a number in (0, 1), got {fpr!r}")
        self.model: AnomalyModel | None = None
        self.threshold: float | None = None
        self.val_scores: np.ndarray | None = None
        self.calibration: Calibration | None = None
        self.history: TrainHistory | None = None
        self._device = select_device(self.train_config.device)

    # ----------------------------------------------------------------- training
    def _dataset(self, data: Any, labels: np.ndarray | None = None) -> Dataset:
        """Table rows (2-D array, tensor, DataFrame, TabularDataset) -> TabularDataset;
        anything else -> image dataset.  ``labels`` (1 = anomaly) replace the items' labels."""
        if is_table(data):
            return as_table_dataset(data, labels)
        ds = as_image_dataset(data, int(self.settings["image_size"]), str(self.settings["resize_mode"]))
        return ds if labels is None else LabelledDataset(ds, labels)

    def _labels(self, y: Any, n: int) -> np.ndarray | None:
        """y as 0/1 ints; ConfigError when it marks anomalies for a model that cannot use them."""
        if y is None:
            return None
        labels = np.asarray(y).reshape(-1)
        if len(labels) != n:
            raise DataError(f"{len(labels)} labels in y for {n} training samples")
        if not np.isin(labels, (0, 1)).all():
            raise DataError("y must hold 0 (normal/unlabelled) and 1 (known anomaly) only")
        labels = labels.astype(np.int64)
        if labels.any() and not model_entry(self.model_name)[0].uses_labels:
            raise ConfigError(
                f"model {self.model_name} trains on normal data only; y marks "
                f"{int(labels.sum())} anomalies: drop them or use a semi-supervised model (esad)"
            )
        return labels

    def _holdout(self, train: Dataset, labels: np.ndarray | None) -> tuple[Dataset, Dataset]:
        """Hold out ``val_fraction`` of the unlabelled samples; labelled anomalies all stay in training."""
        from reconad.data import split_holdout

        frac, seed = float(self.settings["val_fraction"]), self.train_config.seed
        if labels is None or not labels.any():
            return split_holdout(train, frac, seed)
        normal = np.flatnonzero(labels == 0)
        if len(normal) < 2:
            raise DataError(
                f"y marks {int(labels.sum())} of {len(labels)} samples as anomalies: "
                "at least 2 unlabelled/normal samples are needed"
            )
        n_val = min(len(normal) - 1, max(1, int(np.floor(frac * len(normal) + 0.5))))
        val_idx = np.sort(np.random.default_rng(seed).permutation(normal)[:n_val])
        train_idx = np.setdiff1d(np.arange(len(labels)), val_idx)
        return Subset(train, train_idx.tolist()), Subset(train, val_idx.tolist())

    def _check_kind(self, table: bool, model: AnomalyModel | None = None) -> None:
        """ConfigError when the data kind (table rows / images) does not suit the model."""
        cls = model_entry(self.model_name)[0]
        if table and "table" not in cls.input_kinds:
            raise ConfigError(
                f"model {self.model_name} takes images only, got a table (rows x features); "
                "for tables use ae, vae, memae or esad"
            )
        shape = getattr(getattr(model, "config", None), "input_shape", None)
        if model is not None and shape is not None and (len(shape) == 1) != table:
            trained, given = ("table rows", "images") if len(shape) == 1 else ("images", "table rows")
            raise ConfigError(f"this {self.model_name} model was trained on {trained}, got {given}")

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
        of image paths; or table rows (a 2-D array/tensor, a pandas DataFrame or a
        ``TabularDataset``), which models that take tables (ae, vae, memae, esad) train
        their MLP variant on (HFR refuses them).

        ``y`` (optional, one per sample): 1 = known anomaly, 0 = normal/unlabelled (the
        Deep SAD convention).  Semi-supervised models (``esad``) train on the labelled
        anomalies; every other model trains on normal data only and *refuses* a ``y``
        that marks anomalies (ConfigError) rather than silently dropping them.

        ``val_data``: held-out normal data for early stopping and the threshold; when
        absent, ``val_fraction`` of the unlabelled samples of ``data`` is held out.
        """
        table = is_table(data)
        self._check_kind(table)
        train = self._dataset(data)
        labels = self._labels(y, len(train))
        if labels is not None and labels.any():
            train = self._dataset(train, labels)  # the same items, with their labels
        if len(train) == 0:
            raise DataError("the training set is empty")
        if val_data is not None:
            val = self._dataset(val_data)
        elif float(self.settings["val_fraction"]) > 0 and len(train) >= 10:
            train, val = self._holdout(train, labels)
        else:
            val = None
        torch.manual_seed(self.train_config.seed)
        model_config = dict(self.model_config)
        if "input_shape" in model_config_fields(self.model_name):
            first = train[0]
            model_config["input_shape"] = list((first.x if table else first.image).shape)
        self.model = build_model(self.model_name, **model_config)
        trainer = Trainer(self.train_config, checkpoint_dir=checkpoint_dir, resume=resume)
        self.history = trainer.fit(self.model, train, val)
        self._device = trainer.device
        calib = val if val is not None and len(val) else train
        if calib is train:
            warnings.warn(
                "no held-out normal data: the threshold comes from training scores and will be optimistic", stacklevel=2
            )
        self._calibrate_on(self.decision_function(calib), "held-out normal" if calib is not train else "training")
        return self

    # ------------------------------------------------------------- calibration
    def _calibrate_on(
        self, normal_scores: np.ndarray, source: str, anomaly_scores: np.ndarray | None = None, use_f1: bool = False
    ) -> Calibration:
        fpr = self.settings["fpr"]
        self.calibration = Calibration.fit(
            normal_scores,
            fpr=None if fpr is None else float(fpr),
            quantile=None if fpr is not None else float(self.settings["threshold_quantile"]),
            anomaly_scores=anomaly_scores,
            use_f1=use_f1,
            source=source,
        )
        self.val_scores = np.asarray(normal_scores, dtype=np.float64)
        self.threshold = self.calibration.threshold
        return self.calibration

    def calibrate(
        self, normal_data: Any, anomalous_data: Any = None, fpr: float | None = None, use_f1: bool = False
    ) -> Calibration:
        """Re-choose the threshold from new normal data the model never trained on.

        ``fpr`` (if given) replaces the detector's target false-alarm rate;
        ``anomalous_data`` (labelled anomalies) adds an F1-optimal threshold, used as
        the threshold when ``use_f1``.  p-values then refer to these normals.
        """
        if fpr is not None:
            if not 0 < float(fpr) < 1:
                raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
            self.settings["fpr"] = float(fpr)
        anomalies = None if anomalous_data is None else self.decision_function(anomalous_data)
        return self._calibrate_on(self.decision_function(normal_data), "held-out normal", anomalies, use_f1)

    def p_values(self, data: Any = None, scores: Any = None) -> np.ndarray:
        """Conformal p-value per image: (1 + #{held-out normal scores >= s}) / (n + 1).

        Small means unusual for a normal image; for normal images ``P(p <= a) <= a``.
        Pass images as ``data``, or scores already computed as ``scores``.
        """
        if self.calibration is None:
            raise ConfigError("no calibration: fit() or calibrate() the Detector first")
        if scores is None:
            scores = self.decision_function(data)
        return self.calibration.p_values(scores)

    # ------------------------------------------------------------------ scoring
    def _require_model(self) -> AnomalyModel:
        if self.model is None:
            raise ConfigError("this Detector is not fitted yet: call fit() or Detector.load()")
        return self.model

    @torch.inference_mode()
    def _run(
        self,
        data: Any,
        want_maps: bool,
        batch_size: int | None = None,
        on_batch: Callable[[ImageBatch], None] | None = None,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        model = self._require_model()
        if batch_size is None:
            # On CPU large batches run slower per image (activations fall out of cache;
            # BENCHMARKS.md, speed): small batches there, larger ones on a GPU.
            batch_size = 16 if self._device.type == "cuda" else 4
            # ...unless the model names its own (small networks score faster in large batches).
            batch_size = model.inference_batch_size or batch_size
        model.eval()
        ds = self._dataset(data)
        table = is_table(ds)
        self._check_kind(table, model)
        if table and want_maps:
            raise ConfigError("anomaly maps exist for images only; use decision_function for table rows")
        if len(ds) == 0:
            raise DataError("no rows to score" if table else "no images to score")
        loader = DataLoader(
            ds, batch_size=batch_size, shuffle=False, collate_fn=collate_rows if table else collate_images
        )
        scores, maps = [], []
        show = self.train_config.progress and len(ds) > 4 * batch_size
        for batch in progress(loader, enabled=show, desc="scoring", unit="batch"):
            if on_batch is not None:
                on_batch(batch)
            # Models return (scores, maps); maps is None for table rows.
            s, m = model((batch.x if isinstance(batch, RowBatch) else batch.image).to(self._device))
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

    def score_and_map(
        self, images: Any, on_batch: Callable[[ImageBatch], None] | None = None
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
            "threshold_basis": None if self.calibration is None else self.calibration.basis,
            "calibration": None if self.calibration is None else self.calibration.to_dict(),
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
        try:
            if cfg.get("calibration"):
                det.calibration = Calibration.from_dict(cfg["calibration"])
            elif det.threshold is not None and det.val_scores is not None and det.val_scores.size:
                # A model saved before calibration records: p-values from its held-out scores.
                q = float(det.settings["threshold_quantile"])
                det.calibration = Calibration(
                    np.sort(det.val_scores), float(det.threshold), f"quantile={q:g}", quantile=q
                )
        except DataError as exc:
            raise ModelFileError(f"{directory}: {exc}") from exc
        hist = cfg.get("history")
        if hist:
            det.history = TrainHistory(**{k: v for k, v in hist.items() if k in TrainHistory.__dataclass_fields__})
        return det

    def __repr__(self) -> str:
        state = "fitted" if self.model is not None else "not fitted"
        return f"Detector({self.model_name!r}, {state})"
