from reconad.models.memae.config import MemAEConfig
from reconad.models.memae.model import MemAE, Memory, hard_shrink
from reconad.models.memae.paper import PAPER, VideoRecipe

__all__ = ["PAPER", "MemAE", "MemAEConfig", "Memory", "VideoRecipe", "hard_shrink"]
