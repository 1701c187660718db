from reconad.models.aae.config import AAEConfig
from reconad.models.aae.model import AAE

__all__ = ["AAE", "AAEConfig"]
