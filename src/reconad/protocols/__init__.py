"""Every benchmark protocol: typed settings (``reconad.protocols.settings``), one runner each,
one results writer (``reconad.protocols.results``).

| protocol | settings | what it measures |
|---|---|---|
| ``localization`` | ``LocalizationSettings`` | image / pixel AUROC and PRO per category (MVTec layout, textures, tiles) |
| ``speed`` | ``SpeedSettings`` | training time, images/s per engine and batch size, peak memory, FLOP floor |
| ``calibration`` | ``CalibrationSettings`` | realised false-alarm rate at a target rate on fresh normals |
| ``one-class`` | ``OneClassSettings`` | one class normal, the rest anomalous (Fashion-MNIST, MNIST, CIFAR-10, digits) |
| ``tabular`` | ``TabularSettings`` | ADBench sets beside PyOD's baselines |
| ``kddcup99`` | ``Kddcup99Settings`` | the DAGMM / MemAE protocol on KDDCUP99 |
| ``video`` | ``VideoSettings`` | frame-level AUROC on test clips in the UCSD layout (UCSD Ped2), frames/s |
| ``hyperspectral`` | ``HyperspectralSettings`` | per-scene pixel AUROC on hyperspectral scenes, beside global RX |
| ``serve`` | ``ServeLoadSettings`` | ``reconad serve`` under load: latency, images/s, errors, RSS, a flood past the queue |

``run_protocol(name, settings)`` runs one; the command line (``reconad benchmark NAME``,
one sub-command per protocol generated from its settings class) only fills the settings.
Scripts in the top-level ``benchmarks/`` folder (ablations) call these modules' public helpers.
"""

from __future__ import annotations

import importlib
from typing import Any

from reconad.errors import ConfigError
from reconad.protocols.settings import (
    CalibrationSettings,
    HyperspectralSettings,
    Kddcup99Settings,
    LocalizationSettings,
    OneClassSettings,
    ProtocolSettings,
    ServeLoadSettings,
    SpeedSettings,
    TabularSettings,
    VideoSettings,
)

#: protocol name -> (module holding ``run``, its settings class)
PROTOCOLS: dict[str, tuple[str, type[ProtocolSettings]]] = {
    "localization": ("reconad.protocols.localization", LocalizationSettings),
    "speed": ("reconad.protocols.speed", SpeedSettings),
    "calibration": ("reconad.protocols.calibration", CalibrationSettings),
    "one-class": ("reconad.protocols.one_class", OneClassSettings),
    "tabular": ("reconad.protocols.tabular", TabularSettings),
    "kddcup99": ("reconad.protocols.tabular", Kddcup99Settings),
    "video": ("reconad.protocols.video", VideoSettings),
    "hyperspectral": ("reconad.protocols.hyperspectral", HyperspectralSettings),
    "serve": ("reconad.protocols.serve_load", ServeLoadSettings),
}


def run_protocol(name: str, settings: ProtocolSettings) -> dict[str, Any]:
    """Run protocol ``name`` with ``settings`` (an instance of its settings class)."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {name!r}; choose one of {', '.join(PROTOCOLS)}")
    module, settings_cls = PROTOCOLS[name]
    if type(settings) is not settings_cls:  # kddcup99's settings subclass tabular's: exact class
        raise ConfigError(f"protocol {name} takes {settings_cls.__name__}, got {type(settings).__name__}")
    result: dict[str, Any] = importlib.import_module(module).run(settings)
    return result


__all__ = [
    "PROTOCOLS",
    "CalibrationSettings",
    "HyperspectralSettings",
    "Kddcup99Settings",
    "LocalizationSettings",
    "OneClassSettings",
    "ProtocolSettings",
    "ServeLoadSettings",
    "SpeedSettings",
    "TabularSettings",
    "VideoSettings",
    "run_protocol",
]
