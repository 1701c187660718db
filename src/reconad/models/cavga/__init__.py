from reconad.models.cavga.config import CAVGAConfig
from reconad.models.cavga.model import CAVGA

__all__ = ["CAVGA", "CAVGAConfig"]
