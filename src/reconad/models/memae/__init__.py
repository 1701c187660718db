from reconad.models.memae.config import MemAEConfig
from reconad.models.memae.model import MemAE, Memory, hard_shrink

__all__ = ["MemAE", "MemAEConfig", "Memory", "hard_shrink"]
