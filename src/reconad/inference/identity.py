"""A pipeline's identity: which model file, configuration, engine (and its file) and
tiling produce its scores, summed up in one fingerprint that everything written from
the pipeline records (``scores.csv``'s ``predict.json``, ``metrics.json``, the server's
``/v1/models``)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Identity", "config_sha256", "state_sha256"]


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def config_sha256(model_config: dict[str, Any], settings: dict[str, Any]) -> str:
    """SHA-256 of the model's configuration and the detector settings (canonical JSON)."""
    return _digest({"model_config": model_config, "detector": settings})


def state_sha256(state: dict[str, Any]) -> str:
    """SHA-256 of a model's tensors in memory (names, shapes, dtypes and bytes, in name order):
    the identity of a fitted ``Detector`` that was never saved."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        try:
            h.update(t.numpy().tobytes())
        except TypeError:  # a dtype numpy lacks (bfloat16): its float32 values
            h.update(t.float().numpy().tobytes())
    return h.hexdigest()


@dataclass(frozen=True)
class Identity:
    """What produces a pipeline's scores; ``fingerprint`` changes when any part does."""

    model: str
    #: SHA-256 of the model file (or of the tensors of an unsaved Detector)
    model_sha256: str
    config_sha256: str
    engine: str
    #: SHA-256 of the file the engine runs (an export), None for PyTorch
    engine_file_sha256: str | None
    #: (tile size, overlap), None for whole images
    tiling: tuple[int, int] | None

    @property
    def fingerprint(self) -> str:
        return _digest(asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "tiling": None if self.tiling is None else list(self.tiling),
            "fingerprint": self.fingerprint,
        }
