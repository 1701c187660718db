from reconad.models.anogan.config import AnoGANConfig
from reconad.models.anogan.model import AnoGAN

__all__ = ["AnoGAN", "AnoGANConfig"]
