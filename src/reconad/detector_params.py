"""The Detector's parameters: stored as given (scikit-learn's rule), checked and split into
the model's, the engine's and the detector's settings when asked (in ``fit``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from reconad.data.geometry import check_geometry
from reconad.engine import TrainConfig
from reconad.engine.device import select_device
from reconad.errors import ConfigError
from reconad.models import model_config_fields, model_entry
from reconad.selection import auto_model, check_auto_options, is_auto
from reconad.tiling import check_tiling

#: Detector-level settings (neither the model's nor the engine's).
DETECTOR_DEFAULTS: dict[str, Any] = {
    "image_size": 256,
    "resize_mode": "resize",
    "val_fraction": 0.1,
    # The older rule (the threshold at this quantile of the normal scores); None: not used.
    "threshold_quantile": None,
    # Target false-alarm rate on normal data; when set it wins over threshold_quantile.
    # Neither given: 5 %, or 1 % where the calibration scores resolve it (default_fpr).
    "fpr": None,
    # A named set of model options (the model's ``presets``); options given beside it win.
    "preset": None,
    # Where the threshold's normal scores come from.  "split" (the default): a share of the
    # normal images (calibration_fraction, at least what the target rate needs) set aside
    # before training, which no part of the model sees (not early stopping, not the score
    # normalisation): exact split-conformal, see BENCHMARKS §22.  "holdout": the
    # val_fraction split that also served early stopping and normalisation (optimistic).
    # "cross-fit": every training image scored by a model that did not see it (K more
    # trainings, K = calibration_folds); "kde": the held-out split's scores smoothed by a
    # Gaussian kernel density estimate, whose quantile is the threshold (adVAE's rule).
    "calibration": "split",
    "calibration_fraction": 0.2,
    "calibration_folds": 5,
    # Tiled scoring of large images (reconad.tiling): the model trains on and scores
    # tile_size squares cut from images read at their own resolution; None: whole
    # images brought to image_size.  tile_overlap None: an eighth of the tile.
    "tile_size": None,
    "tile_overlap": None,
    # "auto": image_size (as the largest side), resize_mode and tiling chosen at fit from the
    # training images' sizes (reconad.data.geometry); recorded as geometry_ and in config.json.
    "geometry": None,
}
CALIBRATIONS = ("split", "holdout", "cross-fit", "kde")


@dataclass(frozen=True)
class Resolved:
    """The settings the parameters stand for."""

    model_name: str
    model_config: dict[str, Any]
    train_config: TrainConfig
    settings: dict[str, Any]
    min_image_size: int


def _model_name(model: Any) -> str:
    if not isinstance(model, str):
        raise ConfigError(f"model must be a model name (a string), got {model!r}")
    model_entry(model)  # an unknown name is a ConfigError listing the known ones
    return model.lower()


def allowed_names(model: Any) -> set[str]:
    """Every option name ``model`` takes (ConfigError for a model that is not one)."""
    engine = TrainConfig.field_names() | set(DETECTOR_DEFAULTS)
    if is_auto(model):
        return engine
    return model_config_fields(_model_name(model)) | engine


def check_names(model: Any, options: dict[str, Any]) -> None:
    """ConfigError for an option name ``model`` has not (values are checked in fit).  A
    model that is not one is left for fit to refuse, so ``set_params`` never refuses a value."""
    try:
        allowed = allowed_names(model)
    except ConfigError:
        return
    unknown = set(options) - allowed
    if unknown:
        raise ConfigError(f"unknown option(s) for {str(model).lower()}: {', '.join(sorted(unknown))}")


def default_params(model: Any) -> dict[str, Any]:
    """The defaults ``get_params`` shows beside the options given: the model's (none for
    ``auto``), the engine's (with the model's suggestions) and the detector's.  For a
    ``model`` that is not one, the engine's and the detector's only: ``get_params`` never raises."""
    try:
        name = None if is_auto(model) else _model_name(model)
    except ConfigError:
        return {**TrainConfig().to_dict(), **DETECTOR_DEFAULTS}
    if name is None:
        return {**TrainConfig().to_dict(), **DETECTOR_DEFAULTS}
    model_cls, cfg_cls = model_entry(name)
    return {
        **cfg_cls().to_dict(),
        **TrainConfig.from_dict(dict(model_cls.train_defaults)).to_dict(),
        **DETECTOR_DEFAULTS,
    }


def resolve_params(model: Any, given: dict[str, Any], selection: dict[str, Any] | None) -> Resolved:
    """Check ``model`` and the options ``given`` and derive the settings (``selection``:
    what ``model="auto"`` chose, if it has)."""
    auto, train_keys = is_auto(model), TrainConfig.field_names()
    if auto:  # model="auto": the model chosen in fit (reconad.selection); engine/detector options only
        check_auto_options(given, train_keys | set(DETECTOR_DEFAULTS))
    chosen, chosen_options = auto_model(selection) if auto else (None, {})
    name = _model_name(chosen or model)
    model_keys = model_config_fields(name)
    clash = model_keys & (train_keys | set(DETECTOR_DEFAULTS))
    if clash:  # a model must not reuse an engine or detector option's name
        raise ConfigError(f"model {name} has options named like engine/detector ones: {sorted(clash)}")
    unknown = set(given) - model_keys - train_keys - set(DETECTOR_DEFAULTS)
    if unknown:
        raise ConfigError(f"unknown option(s) for {name}: {', '.join(sorted(unknown))}")
    model_cls, cfg_cls = model_entry(name)
    preset = given.get("preset")
    if preset is not None and (not isinstance(preset, str) or preset not in model_cls.presets):
        choices = ", ".join(sorted(model_cls.presets)) or "none"
        raise ConfigError(f"unknown preset {preset!r} for {name}; presets: {choices}")
    base = dict(model_cls.presets[preset]) if preset is not None else {}
    model_config = {**base, **chosen_options, **{k: v for k, v in given.items() if k in model_keys}}
    _check_model_config(name, cfg_cls, model_config)
    # The model's suggested engine settings (e.g. a larger batch for small nets); the user's win.
    train_config = TrainConfig.from_dict(
        {**model_cls.train_defaults, **{k: v for k, v in given.items() if k in train_keys}}
    )
    settings = {**DETECTOR_DEFAULTS, **{k: v for k, v in given.items() if k in DETECTOR_DEFAULTS}}
    check_settings(settings, name, model_cls.min_image_size)
    select_device(train_config.device)  # an unknown or absent device: refused with the rest
    return Resolved(name, model_config, train_config, settings, model_cls.min_image_size)


def _check_model_config(name: str, cfg_cls: Any, config: dict[str, Any]) -> None:
    """The model's option values, checked by building its config as fit will (a value its
    config refuses: ConfigError now, not after the data is read)."""
    try:
        cfg_cls(**config)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"model {name}: {exc}") from None


def check_settings(s: dict[str, Any], model_name: str, min_image_size: int) -> None:
    """ConfigError (one line) for a detector setting out of its range."""
    size = s["image_size"]
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
        raise ConfigError(f"image_size must be an integer (square images), got {size!r}")
    if int(size) < min_image_size:
        raise ConfigError(f"image_size must be >= {min_image_size} for {model_name}, got {size}")
    try:
        val_fraction = float(s["val_fraction"])
    except (TypeError, ValueError):
        raise ConfigError(f"val_fraction must be in [0, 1), got {s['val_fraction']!r}") from None
    if isinstance(s["val_fraction"], bool) or not 0 <= val_fraction < 1:
        raise ConfigError("val_fraction must be in [0, 1)")
    q = s["threshold_quantile"]
    if q is not None and (not _number(q) or not 0 < float(q) <= 1):
        raise ConfigError(f"threshold_quantile must be in (0, 1], got {q!r}")
    frac = s["calibration_fraction"]
    if not _number(frac) or not 0 < float(frac) < 1:
        raise ConfigError(f"calibration_fraction must be a number in (0, 1), got {frac!r}")
    fpr = s["fpr"]
    if fpr is not None and (not _number(fpr) or not 0 < float(fpr) < 1):
        raise ConfigError(f"fpr must be a number in (0, 1), got {fpr!r}")
    if not isinstance(s["calibration"], str) or s["calibration"] not in CALIBRATIONS:
        raise ConfigError(f"unknown calibration {s['calibration']!r}; choose one of {', '.join(CALIBRATIONS)}")
    check_tiling(s["tile_size"], s["tile_overlap"], min_image_size)
    if s["tile_size"] is None and s["tile_overlap"] is not None:
        raise ConfigError(f"tile_overlap ({s['tile_overlap']}) needs tile_size: without tiles nothing overlaps")
    check_geometry(s["geometry"])
    folds = s["calibration_folds"]
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ConfigError(f"calibration_folds must be an integer >= 2, got {folds!r}")


def _number(value: Any) -> bool:
    """A real number, not a bool or a string (a value set_params stored unchecked)."""
    return not isinstance(value, (bool, str)) and isinstance(value, (int, float, np.integer, np.floating))
