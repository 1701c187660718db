"""The one training engine: config, devices, distributed, checkpoints, progress."""

from reconad.engine.config import TrainConfig
from reconad.engine.trainer import Trainer, TrainHistory, move_to

__all__ = ["TrainConfig", "Trainer", "TrainHistory", "move_to"]
