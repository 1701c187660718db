"""The one training engine: config, devices, distributed, checkpoints, progress.

The names below load on first use, so that ``reconad.engine.progress`` (and the other
small modules) can be imported without loading the trainer and PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconad.engine.config import TrainConfig
    from reconad.engine.trainer import Trainer, TrainHistory, move_to

__all__ = ["TrainConfig", "Trainer", "TrainHistory", "move_to"]

_HOMES = {
    "TrainConfig": "reconad.engine.config",
    "Trainer": "reconad.engine.trainer",
    "TrainHistory": "reconad.engine.trainer",
    "move_to": "reconad.engine.trainer",
}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'reconad.engine' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
