from reconad.models.egbad.config import EGBADConfig
from reconad.models.egbad.model import EGBAD

__all__ = ["EGBAD", "EGBADConfig"]
