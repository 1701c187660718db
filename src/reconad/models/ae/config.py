"""Settings of the plain autoencoder (AE)."""

from __future__ import annotations

from dataclasses import dataclass

from reconad.models.networks import NetConfig


@dataclass
class AEConfig(NetConfig):
    """AE settings: only the shared network settings (see :class:`NetConfig`)."""
