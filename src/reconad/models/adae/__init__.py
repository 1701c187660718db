from reconad.models.adae.config import ADAEConfig
from reconad.models.adae.model import ADAE

__all__ = ["ADAE", "ADAEConfig"]
