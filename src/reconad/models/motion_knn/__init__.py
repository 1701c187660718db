from reconad.models.motion_knn.config import MotionKNNConfig
from reconad.models.motion_knn.model import MotionKNN, StreamState

__all__ = ["MotionKNN", "MotionKNNConfig", "StreamState"]
