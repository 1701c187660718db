from reconad.models.advae.config import AdVAEConfig
from reconad.models.advae.model import AdVAE

__all__ = ["AdVAE", "AdVAEConfig"]
