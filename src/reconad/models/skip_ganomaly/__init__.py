from reconad.models.skip_ganomaly.config import SkipGANomalyConfig
from reconad.models.skip_ganomaly.model import SkipGANomaly

__all__ = ["SkipGANomaly", "SkipGANomalyConfig"]
