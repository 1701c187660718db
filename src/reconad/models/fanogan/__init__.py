from reconad.models.fanogan.config import FAnoGANConfig
from reconad.models.fanogan.model import FAnoGAN

__all__ = ["FAnoGAN", "FAnoGANConfig"]
