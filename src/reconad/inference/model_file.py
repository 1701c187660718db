"""A saved model directory loaded for scoring (PyTorch): the one loader ``Detector.load``
and ``reconad.inference.open_run`` share.  Only safetensors and JSON are read; the
tensor file is checked against its SHA-256 first (``reconad.serialization``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from reconad.engine.device import select_device
from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.models import AnomalyModel, build_model, model_entry
from reconad.serialization import CONFIG, read_model_dir

__all__ = ["default_batch_size", "device_name", "load_fitted"]


def device_name(cfg: dict[str, Any], device: str | None) -> str:
    """The device to load on: as asked, else the saved one (CPU when a saved GPU is missing)."""
    if device is not None:
        return device
    saved = str((cfg.get("train_config") or {}).get("device", "auto"))
    return "cpu" if saved not in ("auto", "cpu") and not torch.cuda.is_available() else saved


def default_batch_size(model: AnomalyModel, device: torch.device) -> int:
    """Images per forward pass when scoring: the model's own choice, else 16 on a GPU and 4
    on a CPU (there large batches run slower per image: activations fall out of cache)."""
    return model.inference_batch_size or (16 if device.type == "cuda" else 4)


def load_fitted(directory: str | os.PathLike, device: str | None = None) -> tuple[AnomalyModel, dict[str, Any]]:
    """(the model in eval mode on ``device``, its saved config); ModelFileError naming the file
    for a tampered, foreign or inconsistent model directory."""
    state, cfg = read_model_dir(directory)
    try:
        name = str(cfg["model"]).lower()
        model_cls, cfg_cls = model_entry(name)
        preset = (cfg.get("detector") or {}).get("preset")
        base = dict(model_cls.presets[preset]) if preset is not None else {}
        model = build_model(name, **{**base, **cfg_cls.saved_options(cfg.get("model_config", {}))})
        model.load_trainable_state_dict(state)
        dev = select_device(device_name(cfg, device))
    except (ConfigError, DataError) as exc:  # an edited config.json (both are ValueErrors): name the file
        raise ModelFileError(f"{Path(directory) / CONFIG}: {exc}") from exc
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise ModelFileError(
            f"{Path(directory) / CONFIG} does not match the tensors of {Path(directory) / 'model.safetensors'} "
            f"(the file was edited?): {_first_line(exc)}"
        ) from exc
    return model.to(dev).eval(), cfg


def _first_line(exc: BaseException) -> str:
    """The first informative line of ``exc`` (torch's state-dict errors list every tensor)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        return f"{lines[1]} (and {len(lines) - 2} more)" if len(lines) > 2 else lines[1]
    return lines[0] if lines else type(exc).__name__
