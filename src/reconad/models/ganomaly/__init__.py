from reconad.models.ganomaly.config import GANomalyConfig
from reconad.models.ganomaly.model import GANomaly

__all__ = ["GANomaly", "GANomalyConfig"]
