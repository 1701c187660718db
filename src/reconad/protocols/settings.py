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

    def model_names(self) -> list[str]:
        """The model names ``model`` holds (comma-separated)."""
        return [m.strip().lower() for m in self.model.split(",") if m.strip()]


@dataclass
class LocalizationSettings(ProtocolSettings):
    """Train + test one model per category of an MVTec-style dataset; ``model`` may name
    several, comma-separated (e.g. ``hfr,patchcore``), run on the same splits."""

    dataset: str = "textures"
    root: str | None = None
    categories: list[str] | None = None
    image_size: int = 256
    resize_mode: str = "resize"
    heatmaps: int = 0
    labelled_fraction: float = 0.0


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
    """Realised against expected false-alarm rates at target rates, per training-set size
    and calibration method (``split``, ``holdout``, ``cross-fit``), on textures or magnetic tiles."""

    dataset: str = "textures"
    root: str | None = None
    categories: list[str] | None = None
    fprs: list[float] = field(default_factory=lambda: [0.05, 0.01])
    n_train: list[int] | None = None
    methods: list[str] = field(default_factory=lambda: ["split", "holdout", "cross-fit"])
    n_fresh: int = 500
    #: generated defects of each kind among the fresh textures' test images (for the AUROC)
    n_defects: int = 10
    image_size: int = 256

    def sizes(self) -> list[int]:
        """Training-set sizes: as given, else 30, 60, 120 and all (240 generated textures, 762 tiles)."""
        if self.n_train:
            return list(self.n_train)
        return [30, 60, 120, 762] if self.dataset == "magnetic-tile" else [30, 60, 120, 240]


@dataclass
class OneClassSettings(ProtocolSettings):
    """Each class in turn normal, the rest anomalous (image sets); with ``anomalous_class``
    the inverse (GANomaly's and EGBAD's protocol): each class in turn anomalous, the other
    classes normal.  ``train_per_class`` keeps a seeded draw of that many normal training
    images (all when None): the same test split, a smaller training set.  ``seeds``: runs
    per class, with seeds ``seed``, ``seed + 1``, ...; the table gives the mean over the
    seeds and its spread."""

    dataset: str = "digits"
    root: str | None = None
    classes: list[int] | None = None
    image_size: int | None = None
    labelled_ratio: float = 0.0
    train_per_class: int | None = None
    download: bool = False
    val_fraction: float = 0.1
    anomalous_class: bool = False
    seeds: int = 1


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


@dataclass
class VideoSettings(ProtocolSettings):
    """Video anomaly detection on clip folders in the UCSD layout (``ucsd-ped2``, or any set
    laid out like it): train on the training clips, per-frame scores on the test clips.

    ``frame_size`` (H, W) is the working resolution; ``clip_length`` frames per clip;
    ``train_stride`` / ``test_stride`` the step between clip starts; ``labels`` where the
    test-frame labels come from (``m``, ``mat``, ``csv``); ``normalisation`` the score
    reported first (``clip``: per test clip min-max, the video papers' regularity score;
    ``global``: one min-max over all test frames); both are always in results.json.
    ``threads``: torch intra-op threads while it runs (None: leave as is).
    """

    dataset: str = "ucsd-ped2"
    root: str | None = None
    frame_size: list[int] = field(default_factory=lambda: [64, 96])
    channels: int = 1
    clip_length: int = 16
    train_stride: int = 4
    test_stride: int = 8
    labels: str = "m"
    normalisation: str = "clip"
    threads: int | None = None


@dataclass
class HyperspectralSettings(ProtocolSettings):
    """Per-scene unsupervised detection on hyperspectral scenes (``.mat`` / ENVI files in
    ``root``; ``scenes`` picks some by file name).  Each model trains on the scene's own
    pixels without labels; the global RX detector always runs beside as the baseline."""

    root: str | None = None
    scenes: list[str] | None = None
    maps: bool = True
    threads: int | None = None


@dataclass
class ServeLoadSettings(ProtocolSettings):
    """Load test of ``reconad serve`` on loopback: ``run`` served in a subprocess, closed-loop
    phases of ``clients`` concurrent clients for ``seconds`` each posting real test images,
    then an open-loop flood at ``flood_factor`` times the rate the largest phase sustained
    for ``flood_seconds`` (at most ``flood_clients`` requests outstanding).  Every phase
    stops after ``max_requests``.  The offline ``reconad predict --engine onnx`` rate over
    ``offline_images`` images is measured in the same run; ``server`` holds extra
    ``ServeConfig`` fields (e.g. ``{"max_batch": 8}``)."""

    run: str | None = None
    clients: list[int] = field(default_factory=lambda: [1, 4, 16])
    seconds: float = 30.0
    flood_seconds: float = 60.0
    flood_factor: float = 4.0
    flood_clients: int = 96  # between the server's default queue (64 images) and its connection limit (128)
    engine: str = "onnx"
    workers: int = 1
    n_images: int = 64
    offline_images: int = 256
    max_requests: int = 100_000
    server: dict[str, Any] = field(default_factory=dict)
