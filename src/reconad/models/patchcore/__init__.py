from reconad.models.patchcore.config import PatchCoreConfig
from reconad.models.patchcore.model import PatchCore

__all__ = ["PatchCore", "PatchCoreConfig"]
