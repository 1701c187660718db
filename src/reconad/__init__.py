"""reconad: reconstruction-based anomaly detection and localization."""

from __future__ import annotations

from reconad.errors import ConfigError, DataError, ModelFileError, ReconadError
from reconad.version import __version__

__all__ = ["Detector", "ReconadError", "DataError", "ConfigError", "ModelFileError", "__version__"]


def __getattr__(name: str) -> type:
    # Lazy: importing reconad must stay cheap (the CLI imports it for --help).
    if name == "Detector":
        from reconad.detector import Detector

        return Detector
    raise AttributeError(name)
