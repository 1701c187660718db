from reconad.models.alocc.config import ALOCCConfig
from reconad.models.alocc.model import ALOCC

__all__ = ["ALOCC", "ALOCCConfig"]
