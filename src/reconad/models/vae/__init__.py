from reconad.models.vae.config import VAEConfig
from reconad.models.vae.model import VAE

__all__ = ["VAE", "VAEConfig"]
