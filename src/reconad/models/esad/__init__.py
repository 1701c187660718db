from reconad.models.esad.config import ESADConfig
from reconad.models.esad.model import ESAD

__all__ = ["ESAD", "ESADConfig"]
