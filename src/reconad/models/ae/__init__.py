from reconad.models.ae.config import AEConfig
from reconad.models.ae.model import AE

__all__ = ["AE", "AEConfig"]
