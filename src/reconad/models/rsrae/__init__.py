from reconad.models.rsrae.config import RSRAEConfig
from reconad.models.rsrae.model import RSRAE

__all__ = ["RSRAE", "RSRAEConfig"]
