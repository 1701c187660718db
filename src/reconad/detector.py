"""The one facade: ``Detector("hfr", **options)`` with scikit-learn's conventions."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from reconad.calibration import SET_ASIDE, Calibration
from reconad.data.geometry import apply_geometry, fixed
from reconad.data.kinds import DataKind, check_rows_shape, kind_of
from reconad.data.labels import dataset_labels
from reconad.data.records import Batch
from reconad.data.sizes import dataset_size
from reconad.detector_params import (
    CALIBRATIONS,
    DETECTOR_DEFAULTS,
    Resolved,
    check_names,
    default_params,
    resolve_params,
)
from reconad.engine import TrainConfig, Trainer, TrainHistory
from reconad.engine.device import select_device
from reconad.engine.progress import progress
from reconad.errors import ConfigError, DataError, ModelFileError, not_fitted
from reconad.models import (
    AnomalyModel,
    build_model,
    label_learners,
    model_config_fields,
    model_entry,
    model_uses_labels,
    models_taking,
)
from reconad.selection import CANDIDATES, Candidate, choose, is_auto
from reconad.serialization import CONFIG, write_model_dir
from reconad.tiling import RandomTiles, resolve_overlap
from reconad.version import __version__

if TYPE_CHECKING:
    from reconad.inference import Calibrated, Pipeline

log = logging.getLogger("reconad")


__all__ = ["CALIBRATIONS", "DETECTOR_DEFAULTS", "Detector"]


def _within(values: np.ndarray, allowed: tuple[int, ...]) -> bool:
    """Whether every value is one of ``allowed`` (False for values that compare with no number)."""
    try:
        return bool(np.isin(values, allowed).all())
    except (TypeError, ValueError):
        return False


def _uses_labels(name: str, options: dict[str, Any] | None = None) -> bool:
    """Whether model ``name`` (with ``options``) trains on labelled anomalies."""
    try:
        return model_uses_labels(name, options)
    except Exception:  # a registered model that cannot be imported in this build
        return False


def _alias(old: str, new: str) -> property:
    def get(self: Detector) -> Any:
        warnings.warn(
            f"Detector.{old} is deprecated and will be removed in the next release; use Detector.{new}",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.__dict__.get(new)

    return property(get, doc=f"Deprecated read-only alias of ``{new}``.")


class Detector:
    """Train an anomaly model on normal data, then score, map and flag new data.

    >>> det = Detector("hfr", epochs=20).fit("good_images/")
    >>> scores = det.decision_function(["part1.png"])   # higher = more anomalous
    >>> maps = det.anomaly_map(["part1.png"])            # (N, H, W)
    >>> flags = det.predict(["part1.png"])               # 1 = anomalous
    >>> det.save("model/"); det = Detector.load("model/")

    Keyword arguments are split three ways: the model's own settings (e.g.
    ``backbone``, ``score``), the engine's (``epochs``, ``batch_size``, ``lr``,
    ``seed``, ``device``, ``patience``, ``monitor``…) and the detector's
    (``image_size``, ``resize_mode``, ``val_fraction``, ``threshold_quantile``,
    ``fpr``).  An unknown name is an error, so a typo never goes unnoticed.

    scikit-learn conventions: parameters are stored as given and returned by
    ``get_params`` (every model, engine and detector option, defaults included) and
    changed by ``set_params``, so ``sklearn.base.clone`` and ``GridSearchCV`` work; their
    values are checked in ``fit`` (``check_params`` checks them at once), and
    ``model_name``, ``model_config``, ``train_config`` and ``settings`` are derived from
    them when read.  What ``fit`` learns lives in attributes with a trailing underscore:
    ``model_``, ``threshold_``, ``calibration_``, ``val_scores_``, ``history_``,
    ``n_features_in_`` and ``feature_names_in_`` (table rows; the names when a DataFrame's
    columns are strings); ``threshold``, ``calibration``, ``val_scores`` and ``history``
    are read-only aliases for one release (``model`` is the parameter).  Methods that need
    a fitted detector raise scikit-learn's ``NotFittedError`` before ``fit``.
    ``check_estimator`` passes but for the departures listed in ``reconad.sklearn_compat``.

    Scores: ``decision_function`` is higher for more anomalous samples (PyOD's sign);
    ``score_samples`` is its negative, higher for more normal ones (scikit-learn's
    sign, as ``IsolationForest.score_samples``).  ``predict`` gives 1 = anomalous,
    0 = normal (PyOD's labels).

    Table rows (2-D array, tensor, DataFrame) train a model's MLP variant (the models that
    take tables, ``reconad.models.models_taking("table")``: ae, vae, memae, esad, hadgan, rx,
    advae, egbad, alad, ganomaly, aae, adae, rsrae), images its convolutional one, video
    clips (a ``reconad.data.video.ClipWindows`` dataset) the 3-D one of ae and memae.
    ``fit(data, y)``: y = 1 marks a known anomaly; the models that learn from labels
    (``reconad.models.label_learners()``: hfr, esad, cavga (variant='w')) train on them,
    the others keep those samples out of training with one warning (never silently trained
    on), and ignore a y that is no 0/1 labelling (as scikit-learn's outlier detectors
    ignore y).
    """

    model_: AnomalyModel
    threshold_: float | None
    calibration_: Calibration | None
    val_scores_: np.ndarray | None
    history_: TrainHistory | None
    #: model="auto": the candidates, their synthetic figures and the choice (reconad.selection)
    selection_: dict[str, Any] | None

    threshold = _alias("threshold", "threshold_")
    calibration = _alias("calibration", "calibration_")
    val_scores = _alias("val_scores", "val_scores_")
    history = _alias("history", "history_")

    def __init__(self, model: str = "hfr", **options: Any) -> None:
        # Stored as given (scikit-learn's rule): checked, and the settings derived, in fit.
        self.model = model
        self._options = dict(options)

    # --------------------------------------------------------------- parameters
    def _resolve(self) -> Resolved:
        """Check the parameters and derive the model / engine / detector settings from them
        (ConfigError, a ValueError, naming the first bad one)."""
        return resolve_params(self.model, self._options, self.__dict__.get("selection_"))

    def check_params(self) -> Detector:
        """Check the parameters now, as ``fit`` does first (ConfigError naming the first bad
        one): for a caller that wants the error before reading any data.  Returns self."""
        self._resolve()
        return self

    @property
    def model_name(self) -> str:
        """The model in use: ``model`` lower-cased, or the one ``model="auto"`` chose."""
        return self._resolve().model_name

    @property
    def model_config(self) -> dict[str, Any]:
        """The model's options: its preset's, then the ones given."""
        return self._resolve().model_config

    @property
    def train_config(self) -> TrainConfig:
        """The engine's settings: the model's suggested ones, then the ones given."""
        return self._resolve().train_config

    @property
    def settings(self) -> dict[str, Any]:
        """The detector's settings (``DETECTOR_DEFAULTS``, the ones given, and what
        ``geometry="auto"`` chose in fit)."""
        return {**self._resolve().settings, **self.__dict__.get("_geometry_settings", {})}

    @property
    def _device(self) -> torch.device:
        """Where the fitted model runs; before fit, where the ``device`` option points."""
        fitted = self.__dict__.get("_fitted_device")
        return fitted if fitted is not None else select_device(self.train_config.device)

    @_device.setter
    def _device(self, device: torch.device) -> None:
        self.__dict__["_fitted_device"] = device

    @property
    def tiled(self) -> bool:
        """Whether images are scored by tiles at their own resolution (``tile_size`` set)."""
        return self.settings.get("tile_size") is not None

    @property
    def tiling(self) -> tuple[int, int] | None:
        """(tile size, overlap in use) when scoring by tiles, else None."""
        if not self.tiled:
            return None
        tile = int(self.settings["tile_size"])
        return tile, resolve_overlap(tile, self.settings["tile_overlap"])

    @property
    def input_size(self) -> int:
        """The side of the squares the model sees: the tile, or the whole resized image."""
        return int(self.settings["tile_size"] if self.tiled else self.settings["image_size"])

    def _kind(self, data: Any) -> DataKind:
        """The adapter for ``data``'s kind (table rows, images, clips): decided once per
        fit or scoring call; images are read at ``image_size`` (their own size when tiled)."""
        size = None if self.tiled else int(self.settings["image_size"])
        return kind_of(data, size, str(self.settings["resize_mode"]))

    def _tiles(self, data: Dataset | None, seed: int, kind: DataKind) -> Dataset | None:
        """The training tiles of native-resolution images (or ``data`` itself when not tiled)."""
        if data is None or not self.tiled or not kind.tileable:
            return data
        return RandomTiles(data, int(self.settings["tile_size"]), seed=seed)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Every model, engine and detector option (defaults included), and ``model``."""
        return {"model": self.model, **default_params(self.model), **self._options}

    def set_params(self, **params: Any) -> Detector:
        """Change options.  A name no option has is refused at once (as scikit-learn does);
        values are checked in ``fit``.  ``model`` switches the model."""
        model = params.pop("model", self.model)
        check_names(model, {**self._options, **params})
        self.model = model
        self._options.update(params)
        return self

    def __sklearn_tags__(self) -> Any:
        """scikit-learn's estimator tags: an outlier detector that needs no ``y``, takes dense
        2-D rows (and image arrays), no sparse input and no NaN.  Imported here, not at module
        level: scikit-learn costs about a second to import.  Where it departs from
        scikit-learn's outlier detectors (``predict`` gives 1 = anomalous / 0 = normal, PyOD's
        labels; labelled anomalies are refused by models that cannot learn from them):
        ``reconad.sklearn_compat``."""
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="outlier_detector",
            target_tags=TargetTags(required=False),
            input_tags=InputTags(two_d_array=True, three_d_array=True, sparse=False, allow_nan=False),
        )

    def __sklearn_is_fitted__(self) -> bool:
        return "model_" in self.__dict__

    def _require_model(self, method: str) -> AnomalyModel:
        model = self.__dict__.get("model_")
        if model is None:
            raise not_fitted("Detector", method)
        return model

    def fitted_model(self, method: str = "fitted_model") -> AnomalyModel:
        """The fitted model (scikit-learn's NotFittedError naming ``method`` before ``fit``)."""
        return self._require_model(method)

    @property
    def scoring_device(self) -> torch.device:
        """The device the model runs on (``device`` option: auto, cpu, cuda...)."""
        return self._device

    @property
    def inference_batch_size(self) -> int:
        """Images per forward pass when scoring: the model's own choice, else 16 on a GPU, 4 on a CPU."""
        return self._batch_size(self._require_model("inference_batch_size"))

    def calibrated(self) -> Calibrated:
        """What scores are compared with (threshold, p-values' normal scores): the calibration
        part of this detector's pipeline, for every kind of data."""
        from reconad.inference.calibrated import Calibrated

        return Calibrated(self.__dict__.get("threshold_"), self.__dict__.get("calibration_"), "float", self.tiling)

    def pipeline(self, engine: str = "torch", threads: int | None = None) -> Pipeline:
        """This fitted detector as an immutable inference pipeline (``reconad.inference``): what
        its image scoring runs through; ``engine`` another than torch exports the model first."""
        from reconad.inference import from_detector

        return from_detector(self, engine, threads)

    # ----------------------------------------------------------------- training
    def _dataset(self, data: Any, labels: np.ndarray | None = None) -> Dataset:
        """``data`` as a dataset of its kind; ``labels`` (1 = anomaly) replace the items' labels."""
        return self._kind(data).dataset(data, labels)

    def _labels(self, y: Any, n: int) -> np.ndarray | None:
        """y as 0/1 ints (1 = known anomaly), or None where y is none or not read as labels.

        A y marking anomalies for a model that cannot learn from them is returned all the
        same: ``_splits`` keeps those samples out of training and says so (never silently
        trained on).  A y that is no 0/1 labelling (class ids, targets) is ignored by such a
        model, as scikit-learn's outlier detectors ignore y, except scikit-learn's own -1/+1
        outlier labels, refused (their 1 means normal, ours anomalous)."""
        if y is None:
            return None
        labels = np.asarray(y)
        if labels.ndim > 1 and not (labels.ndim == 2 and labels.shape[1] == 1):
            raise DataError(f"y must hold one label per sample (shape ({n},)), got shape {labels.shape}")
        labels = labels.reshape(-1)
        if len(labels) != n:
            raise DataError(f"{len(labels)} labels in y for {n} training samples")
        uses = _uses_labels(self.model_name, self.model_config)
        if not _within(labels, (0, 1)):
            if uses or (_within(labels, (-1, 1)) and (labels == -1).any()):
                raise DataError("y must hold 0 (normal/unlabelled) and 1 (known anomaly) only")
            return None  # not anomaly labels: a model of normal data has no use for it
        return labels.astype(np.int64)

    def _keep_out_known(self, train: Dataset, labels: np.ndarray) -> Dataset:
        """``train`` without its labelled anomalies, for a model that learns from normal data
        only; one warning says how many were kept out and which models would use them."""
        normal = np.flatnonzero(labels == 0)
        if len(normal) == 0:
            raise DataError(f"y marks all {len(labels)} samples as anomalies: {self.model_name} needs normal ones")
        log.warning(
            "model %s trains on normal data only: the %d of %d samples y marks as anomalies are kept out "
            "of training (models that learn from them: %s)",
            self.model_name, int(labels.sum()), len(labels), ", ".join(label_learners()),
        )  # fmt: skip
        return Subset(train, normal.tolist())

    def held_out(self, train: Any) -> Dataset:
        """The share of ``train`` that ``fit`` holds out for calibration (same seed, same split):
        the calibration split (``calibration="split"``), else the held-out ``val_fraction``."""
        ds = self._dataset(train)
        if self.settings["calibration"] == "split" and float(self.settings["val_fraction"]) > 0:
            known = dataset_labels(ds)  # labelled anomalies are never set aside, as in fit
            split = self._calibration_split(dataset_size(ds), known if known is not None and known.any() else None)
            return Subset(ds, [] if split is None else split[1].tolist())
        return self._holdout(ds, None)[1]

    def _calibration_split(self, n: int, labels: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
        """The indices (rest, calibration) of ``n`` training samples: the calibration share
        (``calibration_split_size`` of the normal ones, seed + 2), set aside before anything
        else sees the data; None when too few to set any aside.  An ``fpr`` the split cannot
        resolve is a one-line ``DataError`` saying what it needs."""
        from reconad.calibration import calibration_split_size, require_split_resolvable

        normal = np.arange(n) if labels is None else np.flatnonzero(labels == 0)
        fpr = self.settings["fpr"]
        fraction = float(self.settings["calibration_fraction"])
        if fpr is not None:
            require_split_resolvable(len(normal), float(fpr))
        k = calibration_split_size(len(normal), fraction, None if fpr is None else float(fpr))
        if k < 2:
            return None
        cal = np.sort(np.random.default_rng(self.train_config.seed + 2).permutation(normal)[:k])
        return np.setdiff1d(np.arange(n), cal), cal

    def _holdout(self, train: Dataset, labels: np.ndarray | None) -> tuple[Dataset, Dataset]:
        """Hold out ``val_fraction`` of the unlabelled samples (of video windows: whole clips);
        labelled anomalies all stay in training."""
        from reconad.data import split_holdout

        frac, seed = float(self.settings["val_fraction"]), self.train_config.seed
        if labels is None or not labels.any():
            from reconad.data.video import clip_holdout, is_clip_dataset

            by_clip = clip_holdout(train, frac, seed) if is_clip_dataset(train) else None
            return by_clip if by_clip is not None else split_holdout(train, frac, seed)
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

    def _check_kind(self, kind: DataKind, model: AnomalyModel | None = None) -> None:
        """ConfigError when the data's kind (table rows / images / clips) does not suit the model."""
        cls = model_entry(self.model_name)[0]
        takers = [] if kind.name in cls.input_kinds else models_taking(kind.name)  # named in the refusal
        kind.check_model(self.model_name, cls.input_kinds, None if model is None else model.data_kind, takers)

    def fit_auto(
        self,
        data: Any,
        y: Any = None,
        val_data: Any = None,
        candidates: tuple[Candidate, ...] = CANDIDATES,
        keep: bool = False,
    ) -> Detector:
        """What ``fit`` does for ``model="auto"``, with a candidate list of your own
        (:class:`reconad.selection.Candidate`): each trains on the same split, the best on
        synthetic defects becomes this Detector (``selection_`` says why).  ``keep``: every
        fitted candidate stays in ``candidates_`` (label -> Detector)."""
        if not is_auto(self.model):
            raise ConfigError(f"fit_auto needs Detector('auto'), not {self.model!r}")
        self.__dict__.pop("selection_", None)
        self._resolve()
        train, val, _ = self._split(data, y, val_data)
        choice = choose((train, val), self._sibling, (data, y, val_data), candidates, self.train_config.seed)
        self.selection_ = choice.record
        self._resolve()
        for key in ("model_", "threshold_", "calibration_", "val_scores_", "history_"):
            self.__dict__[key] = choice.chosen.__dict__.get(key)
        self._device = choice.chosen._device
        if keep:
            self.__dict__["candidates_"] = choice.fitted
        return self

    def _sibling(self, model: str, options: dict[str, Any]) -> Detector:
        """A new unfitted Detector of ``model`` with this one's other settings."""
        return type(self)(model, **{**self._options, **options})

    def _split(self, data: Any, y: Any, val_data: Any) -> tuple[Dataset, Dataset | None, DataKind]:
        """(training set with its labels, held-out normal set or None, the data's kind);
        the calibration split (``_splits``) is in neither."""
        train, val, _, kind = self._splits(data, y, val_data)
        return train, val, kind

    def _splits(self, data: Any, y: Any, val_data: Any) -> tuple[Dataset, Dataset | None, Dataset | None, DataKind]:
        """(training set, held-out set for early stopping and normalisation, calibration
        split or None, the data's kind)."""
        kind = self._kind(data)
        self._check_kind(kind)
        train = kind.dataset(data)
        self._record_columns(kind.columns(data), kind.n_features(train))
        if y is None:  # a dataset read from disk may hold labelled anomalies
            y = kind.known_labels(train)
        labels = self._labels(y, dataset_size(train))
        if labels is not None and labels.any() and not _uses_labels(self.model_name, self.model_config):
            train, labels = self._keep_out_known(train, labels), None
        elif labels is not None and labels.any():
            train = kind.dataset(train, labels)  # the same items, with their labels
        if dataset_size(train) == 0:
            raise DataError("the training set is empty")
        val: Dataset | None = None
        cal: Dataset | None = None
        if self.settings["calibration"] == "split" and val_data is None and float(self.settings["val_fraction"]) > 0:
            split = self._calibration_split(dataset_size(train), labels)  # val_fraction 0: hold nothing out
            if split is not None:
                rest, cal_idx = split
                train, cal = Subset(train, rest.tolist()), Subset(train, cal_idx.tolist())
                labels = None if labels is None else labels[rest]
        if val_data is not None:
            val_kind = self._kind(val_data)
            if val_kind.name != kind.name:
                raise ConfigError(
                    f"val_data holds {val_kind.label}, but the training data holds {kind.label}: give both alike"
                )
            val = val_kind.dataset(val_kind.match(val_data, self.__dict__.get("feature_names_in_")))
        elif float(self.settings["val_fraction"]) > 0 and dataset_size(train) >= 10:
            train, val = self._holdout(train, labels)
        return train, val, cal, kind

    def _record_columns(self, names: list[str] | None, n_features: int | None) -> None:
        """scikit-learn's ``feature_names_in_`` (a DataFrame's string column names, matched by
        name when scoring) and ``n_features_in_`` (table rows): set by fit where they exist."""
        for attr, value in (("feature_names_in_", names), ("n_features_in_", n_features)):
            if value is None:
                self.__dict__.pop(attr, None)
            else:
                setattr(self, attr, value)

    def fit(
        self,
        data: Any,
        y: Any = None,
        val_data: Any = None,
        checkpoint_dir: str | os.PathLike | None = None,
        resume: bool = False,
    ) -> Detector:
        """Train on normal data.

        ``data``: a Dataset of ``ImageItem``, an image array/tensor, a folder or a list
        of image paths; or table rows (a 2-D array/tensor, a pandas DataFrame or a
        ``TabularDataset``), which the models that take tables (the class docstring names
        them) train their MLP variant on; image-only models (hfr, patchcore ...) refuse them.

        ``y`` (optional, one per sample): 1 = known anomaly, 0 = normal/unlabelled (the
        Deep SAD convention).  The models that learn from labels (hfr, esad, cavga with
        ``variant="w"``) train on the labelled anomalies; every other model trains on normal
        data only and keeps the samples ``y`` marks as anomalies out of training, with one
        warning (a ``y`` of anomalies only is a DataError).  A ``y`` that is no 0/1
        labelling (class ids, targets passed along by scikit-learn's tools) is ignored by
        those models, except scikit-learn's -1/+1 outlier labels (DataError); a model that
        learns from labels needs 0/1.  Parameters are checked first.

        ``val_data``: held-out normal data for early stopping and the threshold; when
        absent, ``val_fraction`` of the unlabelled samples of ``data`` is held out.  With
        ``calibration="split"`` (the default) and no ``val_data``, the calibration share
        (``calibration_fraction``, at least what ``fpr`` needs) is set aside first and
        scored only after training, so the threshold and p-values are split-conformal.
        """
        if is_auto(self.model):  # train the candidates, keep the best (reconad.selection)
            return self.fit_auto(data, y, val_data)
        return self._fit(data, y, val_data, checkpoint_dir, resume)

    def fit_sharing(self, trained: Detector, data: Any, y: Any = None, val_data: Any = None) -> Detector:
        """``fit`` with ``trained``'s weights: for a setting whose training is the same as
        ``trained``'s (same data, same options but how it scores, e.g. ``hybrid``); no
        epoch runs, only the model's end step and the calibration.  ``auto`` uses it so that
        candidates with the same training train once."""
        if is_auto(self.model) or trained.__dict__.get("model_") is None or trained.model_name != self.model_name:
            raise ConfigError("fit_sharing needs a fitted Detector of the same model (a setting of the same training)")
        self._fit(data, y, val_data, None, False, trained.model_)
        self.history_ = trained.history_
        return self

    def _fit(
        self,
        data: Any,
        y: Any,
        val_data: Any,
        checkpoint_dir: str | os.PathLike | None,
        resume: bool,
        weights_from: AnomalyModel | None = None,
    ) -> Detector:
        self.__dict__.pop("selection_", None)
        self.__dict__.pop("_geometry_settings", None)
        resolved = self._resolve()
        settings = dict(resolved.settings)
        self.geometry_ = apply_geometry(settings, data, resolved.min_image_size)
        chosen = {k: v for k, v in settings.items() if v != resolved.settings[k]}
        if chosen:  # what geometry="auto" chose: the settings this fit (and its model) stand for
            self._geometry_settings = chosen
        train, val, cal_split, kind = self._splits(data, y, val_data)
        torch.manual_seed(resolved.train_config.seed)
        model_config = dict(resolved.model_config)
        seed = resolved.train_config.seed
        tiles = self._tiles(train, seed, kind)
        assert tiles is not None
        if "input_shape" in model_config_fields(resolved.model_name):
            model_config["input_shape"] = kind.input_shape(tiles[0])
        model = build_model(resolved.model_name, **model_config)
        trainer = Trainer(resolved.train_config, checkpoint_dir=checkpoint_dir, resume=resume)
        self.history_ = trainer.fit(model, tiles, self._tiles(val, seed + 1, kind), weights_from)
        self.model_ = model
        self._device = trainer.device
        return self._calibrate_after_fit(data, y, val_data, (train, val, cal_split))

    def _calibrate_after_fit(
        self, data: Any, y: Any, val_data: Any, parts: tuple[Dataset, Dataset | None, Dataset | None]
    ) -> Detector:
        """The threshold and p-values' scores as ``calibration`` says (after training)."""
        train, val, cal_split = parts
        if cal_split is not None:  # images no part of the model saw: exact split-conformal
            self._calibrate_on(self.decision_function(cal_split), SET_ASIDE)
            return self
        calib = val if val is not None and dataset_size(val) else train
        if calib is train:
            warnings.warn(
                "no held-out normal data: the threshold comes from training scores and will be optimistic",
                stacklevel=3,
            )
        source = "held-out normal" if calib is not train else "training"
        if self.settings["calibration"] == "cross-fit" and val_data is None:
            folds = int(self.settings["calibration_folds"])
            self._calibrate_on(self._cross_fit_scores(data, y), f"cross-fitted ({folds}-fold)")
            return self
        self._calibrate_on(self.decision_function(calib), source)
        return self

    def _cross_fit_scores(self, data: Any, y: Any) -> np.ndarray:
        """Every normal training sample's score from a model trained without it (K folds).

        Each fold's model has its own held-out split for early stopping and normalisation,
        so no score comes from a model that selected or normalised on it; labelled
        anomalies stay in every fold's training data.
        """
        ds = self._dataset(data)
        n = dataset_size(ds)
        labels = self._labels(y, n)
        if labels is None:
            known = dataset_labels(ds)
            labels = known if known is not None else np.zeros(n, dtype=np.int64)
        normal = np.flatnonzero(labels == 0)
        k = int(self.settings["calibration_folds"])
        if self.settings["fpr"] is not None:
            from reconad.calibration import require_resolvable

            require_resolvable(len(normal), float(self.settings["fpr"]))
        if len(normal) < 2 * k:
            raise DataError(f"cross-fitted calibration with {k} folds needs at least {2 * k} normal samples")
        order = np.random.default_rng(self.train_config.seed + 1).permutation(normal)
        params = {**self.get_params(), "calibration": "holdout", "fpr": self.settings["fpr"], **fixed(self.settings)}
        scores = np.empty(n)
        for fold in np.array_split(order, k):
            rest = np.setdiff1d(np.arange(n), fold)
            sub = Detector(**params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # each fold warns like a full fit would
                sub.fit(Subset(ds, rest.tolist()), None if y is None else np.asarray(y)[rest])
            part = np.sort(fold)
            scores[part] = sub.decision_function(Subset(ds, part.tolist()))
        return scores[normal]

    def fit_predict(self, data: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit(data, y)`` then ``predict(data)``: 1 = anomalous, 0 = normal."""
        return self.fit(data, y, **fit_params).predict(data)

    # ------------------------------------------------------------- calibration
    def _calibrate_on(
        self,
        normal_scores: np.ndarray,
        source: str,
        anomaly_scores: np.ndarray | None = None,
        use_f1: bool = False,
    ) -> Calibration:
        fpr, q = self.settings["fpr"], self.settings["threshold_quantile"]
        self.calibration_ = Calibration.fit(
            normal_scores,
            fpr=None if fpr is None else float(fpr),
            quantile=None if fpr is not None or q is None else float(q),
            anomaly_scores=anomaly_scores,
            use_f1=use_f1,
            source=source,
            method="kde" if self.settings["calibration"] == "kde" else "conformal",
        )
        self.val_scores_ = np.asarray(normal_scores, dtype=np.float64)
        self.threshold_ = self.calibration_.threshold
        return self.calibration_

    def calibrate(
        self, normal_data: Any, anomalous_data: Any = None, fpr: float | None = None, use_f1: bool = False
    ) -> Calibration:
        """Re-choose the threshold from new normal data the model never trained on.

        ``fpr`` (if given) replaces the detector's target false-alarm rate;
        ``anomalous_data`` (labelled anomalies) adds an F1-optimal threshold, used as
        the threshold when ``use_f1``.  p-values then refer to these normals.
        """
        self._require_model("calibrate")
        if fpr is not None:
            if not 0 < float(fpr) < 1:
                raise ConfigError(f"fpr must be in (0, 1), got {fpr}")
            self.set_params(fpr=float(fpr))
        anomalies = None if anomalous_data is None else self.decision_function(anomalous_data)
        return self._calibrate_on(self.decision_function(normal_data), "held-out normal", anomalies, use_f1)

    def p_values(self, data: Any = None, scores: Any = None) -> np.ndarray:
        """Conformal p-value per image: (1 + #{held-out normal scores >= s}) / (n + 1).

        Small means unusual for a normal image; for normal images ``P(p <= a) <= a``.
        Pass images as ``data``, or scores already computed as ``scores``.
        """
        self._require_model("p_values")
        calibration = self.__dict__.get("calibration_")
        if calibration is None:
            raise ConfigError("no calibration: fit() or calibrate() the Detector first")
        if scores is None:
            scores = self.decision_function(data)
        return self.calibrated().p_values(scores)

    # ------------------------------------------------------------------ scoring
    def _batch_size(self, model: AnomalyModel) -> int:
        from reconad.inference.model_file import default_batch_size

        return default_batch_size(model, self._device)

    def _collect(
        self, data: Any, want_maps: bool, method: str, on_batch: Callable[[Batch], None] | None = None
    ) -> tuple[np.ndarray, list[np.ndarray]]:
        """Every score in one array, and the maps batch by batch (``want_maps``)."""
        scores, maps = [], []
        for s, m in self.iter_scored(data, want_maps, method, None, on_batch):
            scores.append(s)
            if want_maps and m is not None:
                maps.append(m)
        return np.concatenate(scores), maps

    def _scores_and_maps(
        self, data: Any, method: str, on_batch: Callable[[Batch], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        scores, maps = self._collect(data, True, method, on_batch)
        if len({m.shape[1:] for m in maps}) > 1:
            raise DataError(
                "tiled maps of images of different sizes cannot be stacked into one array: "
                "score them one at a time (or use `reconad predict`, which writes each map on its own)"
            )
        return scores, np.concatenate(maps)

    def iter_scored(
        self,
        data: Any,
        want_maps: bool = True,
        method: str = "iter_scored",
        batch_size: int | None = None,
        on_batch: Callable[[Batch], None] | None = None,
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """(scores, maps or None) batch by batch, so a caller can write each and drop it
        (tiled: image by image); ``on_batch`` sees each input batch first.  Images go through
        the detector's pipeline (``reconad.inference``), table rows and clips through the model."""
        model = self._require_model(method)
        batch_size = batch_size or self._batch_size(model)
        model.eval()
        if model.data_kind == "table" and isinstance(data, (np.ndarray, torch.Tensor)):
            check_rows_shape(data)
        kind = self._kind(data)
        self._check_kind(kind, model)
        ds = kind.dataset(kind.match(data, self.__dict__.get("feature_names_in_")))
        if want_maps and not kind.has_maps:
            raise ConfigError("anomaly maps exist for images only; use decision_function for table rows")
        if dataset_size(ds) == 0:
            raise DataError(kind.empty)
        kind.check_width(ds, self.__dict__.get("n_features_in_"))
        collate = kind.collate()
        if collate is None:  # images: the detector's inference pipeline
            pipe = self.pipeline()
            if batch_size != pipe.batch_size:
                from dataclasses import replace

                pipe = replace(pipe, batch_size=batch_size)
            yield from pipe.iter_dataset(ds, want_maps, on_batch, show_progress=self.train_config.progress)
            return
        yield from self._iter_model(ds, model, want_maps, batch_size, on_batch, collate)

    def _iter_model(
        self,
        ds: Dataset,
        model: AnomalyModel,
        want_maps: bool,
        batch_size: int,
        on_batch: Callable[[Batch], None] | None,
        collate: Callable[[list[Any]], Any],
    ) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        """Table rows and video clips: the model's ``predict_step`` batch by batch."""
        from reconad.inference.checks import checked_scores

        loader = DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate)
        n = dataset_size(ds)
        show = self.train_config.progress and n > 4 * batch_size
        bar = progress(iter(()), enabled=show, total=n, desc="scoring", unit="img")
        first, name, device = 0, self.model_name, self._device  # derived once, not per batch
        try:
            for batch in loader:
                if on_batch is not None:
                    on_batch(batch)
                with torch.inference_mode():
                    out = model.predict_step(batch.to(device))
                m = out.maps.float().cpu().numpy() if want_maps and out.maps is not None else None
                bar.update(batch.num_samples)
                scores = torch.as_tensor(out.scores).float().cpu().numpy()
                yield checked_scores(scores, batch, first, name), m
                first += batch.num_samples
        finally:
            bar.close()

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly score per sample: higher = more anomalous (PyOD's sign)."""
        return self._collect(X, want_maps=False, method="decision_function")[0]

    def score_samples(self, X: Any) -> np.ndarray:
        """Normality score per sample: higher = more normal (scikit-learn's sign), ``-decision_function``."""
        return -self._collect(X, want_maps=False, method="score_samples")[0]

    def anomaly_map(self, images: Any) -> np.ndarray:
        """Pixel anomaly maps (N, H, W) at ``image_size`` resolution."""
        return self._scores_and_maps(images, "anomaly_map")[1]

    def score_and_map(
        self, images: Any, on_batch: Callable[[Batch], None] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and maps in one pass; ``on_batch`` sees each input batch (labels, masks)."""
        return self._scores_and_maps(images, "score_and_map", on_batch)

    def predict(self, X: Any) -> np.ndarray:
        """1 where the score exceeds the threshold learnt from held-out normal scores, else 0."""
        self._require_model("predict")
        if self.__dict__.get("threshold_") is None:
            raise ConfigError("no threshold: this model was saved without one; calibrate() it first")
        labels = self.calibrated().labels(self.decision_function(X))
        assert labels is not None
        return labels

    # ------------------------------------------------------------- persistence
    def get_config(self) -> dict[str, Any]:
        model = self.__dict__.get("model_")
        cal: Calibration | None = self.__dict__.get("calibration_")
        val_scores = self.__dict__.get("val_scores_")
        history: TrainHistory | None = self.__dict__.get("history_")
        return {
            "reconad_version": __version__,
            "model": self.model_name,
            "model_config": model.config.to_dict() if model is not None else dict(self.model_config),
            "train_config": self.train_config.to_dict(),
            "detector": dict(self.settings),
            "geometry": self.__dict__.get("geometry_"),
            "threshold": self.__dict__.get("threshold_"),
            "threshold_basis": None if cal is None else cal.basis,
            "calibration": None if cal is None else cal.to_dict(),
            "val_scores": None if val_scores is None else [float(s) for s in val_scores],
            "history": None if history is None else history.to_dict(),
            "selection": self.__dict__.get("selection_"),
            "feature_names": self.__dict__.get("feature_names_in_"),
        }

    def save(self, directory: str | os.PathLike) -> Path:
        model = self._require_model("save")
        return write_model_dir(directory, model.trainable_state_dict(), self.get_config())

    @classmethod
    def load(cls, directory: str | os.PathLike, device: str | None = None) -> Detector:
        """Load a model directory written by :meth:`save`; refuses tampered or foreign files."""
        from reconad.inference.model_file import device_name, load_fitted

        model, cfg = load_fitted(directory, device)
        from reconad.inference.build import check_fitted_values

        check_fitted_values(Path(directory) / CONFIG, cfg)
        try:
            train_cfg = {**(cfg.get("train_config") or {}), "device": device_name(cfg, device)}
            saved = model_entry(cfg["model"])[1].saved_options(cfg.get("model_config", {}))
            det = cls(cfg["model"], **saved, **train_cfg, **cfg.get("detector", {}))
            det._resolve()  # the saved options, checked as fit checks them
        except ConfigError as exc:  # an edited config.json: name the file the value came from
            raise ModelFileError(f"{Path(directory) / CONFIG}: {exc}") from exc
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{directory}: model file does not match its config: {exc}") from exc
        runs_on = det._device  # the device load was given, pinned as fit pins the trainer's
        det._device = runs_on
        det.model_ = model.to(runs_on).eval()
        det._restore_fitted(cfg, directory)
        return det

    def _restore_fitted(self, cfg: dict[str, Any], directory: str | os.PathLike) -> None:
        """Threshold, calibration and history from a saved config."""
        from reconad.inference.calibrated import calibration_from_config

        self.threshold_ = cfg.get("threshold")
        self.geometry_ = cfg.get("geometry")
        vs = cfg.get("val_scores")
        self.val_scores_ = None if vs is None else np.asarray(vs, dtype=np.float64)
        try:
            self.calibration_ = calibration_from_config(cfg, float(self.settings["threshold_quantile"] or 0.99))
        except DataError as exc:
            raise ModelFileError(f"{directory}: {exc}") from exc
        self.selection_ = cfg.get("selection")
        names = cfg.get("feature_names")
        if names is not None and not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ModelFileError(f"{Path(directory) / CONFIG}: feature_names must be a list of column names")
        shape = getattr(self.model_.config, "input_shape", None)  # [features] for table rows
        width = int(shape[0]) if self.model_.data_kind == "table" and shape else None
        self._record_columns(names, width)
        hist = cfg.get("history")
        self.history_ = TrainHistory.from_dict(hist) if hist else None

    def __repr__(self) -> str:
        state = "fitted" if self.__sklearn_is_fitted__() else "not fitted"
        try:
            name = self.model_name
        except ConfigError:  # parameters are checked in fit; a repr never raises
            name = self.model
        return f"Detector({name!r}, {state})"
