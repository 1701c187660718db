from reconad.models.hfr.config import HFRConfig
from reconad.models.hfr.model import HFR

__all__ = ["HFR", "HFRConfig"]
