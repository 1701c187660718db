from reconad.models.alad.config import ALADConfig
from reconad.models.alad.model import ALAD

__all__ = ["ALAD", "ALADConfig"]
