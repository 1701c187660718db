from reconad.models.hadgan.config import HADGANConfig
from reconad.models.hadgan.detectors import fuse, guided_filter, spatial_detector
from reconad.models.hadgan.model import HADGAN

__all__ = ["HADGAN", "HADGANConfig", "fuse", "guided_filter", "spatial_detector"]
