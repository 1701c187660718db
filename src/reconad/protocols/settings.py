"""Typed settings of every benchmark protocol (what ``reconad benchmark`` fills from its options).

Each protocol takes one of these dataclasses and nothing else; ``options`` holds the
model and engine options (``--set key=value``, ``--epochs``, ``--seed``), ``command``
the command line to record beside the results (None when called from Python).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProtocolSettings:
    out: str = "runs/benchmark"
    model: str = "hfr"
    options: dict[str, Any] = field(default_factory=dict)
    echo: bool = True
    command: str | None = None


@dataclass
class LocalizationSettings(ProtocolSettings):
    """Train + test one model per category of an MVTec-style dataset."""

    dataset: str = "textures"
    root: str | None = None
    categories: list[str] | None = None
    image_size: int = 256
    resize_mode: str = "resize"
    heatmaps: int = 0


@dataclass
class SpeedSettings(ProtocolSettings):
    """Training time, inference images/s per engine and batch size, peak memory."""

    image_size: int = 256
    n_train: int = 300
    n_images: int = 64
    rounds: int = 3
    onnx: bool = True


@dataclass
class CalibrationSettings(ProtocolSettings):
    """Realised false-alarm rate on fresh normal texture images at a target rate."""

    categories: list[str] | None = None
    fpr: float = 0.05
    n_train: int = 120
    n_calibration: int = 120
    n_fresh: int = 500
    image_size: int = 256


@dataclass
class OneClassSettings(ProtocolSettings):
    """Each class in turn normal, the rest anomalous (image sets)."""

    dataset: str = "digits"
    root: str | None = None
    classes: list[int] | None = None
    image_size: int | None = None
    labelled_ratio: float = 0.0
    download: bool = False
    val_fraction: float = 0.1


@dataclass
class TabularSettings(ProtocolSettings):
    """ADBench sets (``tabular``) or KDDCUP99 (``kddcup99``): our models beside PyOD's."""

    protocol: str = "tabular"
    data_root: str | None = None
    datasets: list[str] | None = None
    seeds: list[int] = field(default_factory=lambda: list(range(5)))
    models: list[str] | None = None
    label_fraction: float = 0.1
    threads: int = 1
