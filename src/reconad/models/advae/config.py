"""Settings of adVAE (self-adversarial variational autoencoder)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from reconad.engine.config import check_types
from reconad.errors import ConfigError
from reconad.models.gan import NORMS, GANConfig, check_choice, check_weights


@dataclass
class AdVAEConfig(GANConfig):
    """adVAE settings (plus the shared :class:`GANConfig` / ``NetConfig`` settings).

    lam: λ, the VAE's KL weight on E(x) in the encoder's loss and the weight of the
    generator's loss beside the transformer's (step 1 minimises L_T + λ·L_G).
    gamma: γ, weight of the KL terms of the encoder's verdicts (E(G(z)), E(G(z_T))); the
    paper's robustness study fixes it at 0.01.
    m_z: KLD margin (the paper: "slightly larger than the training KLD of a plain VAE",
    20-40 works).  m_x: MSE margin between G(z) and G(z_T) (2 in every experiment).
    n_samples: L, latent draws whose reconstructions are averaged in the score; None =
    the paper's 1000 for rows, 16 for images.  score_seed: seed of those draws.
    norm: normalisation in the conv networks (``none`` as the paper's MLPs: the encoder
    judges real and generated batches separately, which batch statistics would blur).
    hidden: MLP hidden sizes for rows; None = two layers of ``max(8, D // 2)`` (the
    official networks).  latent_dim: None = 32 for images, ``clip(D // 2, 2, 16)`` for rows.
    lr_g (G and T), lr_d (E), betas: Adam's; the paper uses lr 1e-3 and Adam's defaults.
    """

    lam: float = 1.0
    gamma: float = 0.01
    m_z: float = 30.0
    m_x: float = 2.0
    n_samples: int | None = None
    score_seed: int = 0
    norm: str = "none"
    betas_g: list[float] = field(default_factory=lambda: [0.9, 0.999])
    betas_d: list[float] = field(default_factory=lambda: [0.9, 0.999])

    image_latent: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        check_weights(self, "lam", "gamma", "m_z", "m_x")
        check_types(self, integers=("n_samples", "score_seed"), optional=("n_samples",))
        if self.n_samples is not None and self.n_samples < 1:
            raise ConfigError(f"n_samples must be >= 1, got {self.n_samples}")
        check_choice("norm", self.norm, NORMS)

    def resolved_latent(self) -> int:
        if self.latent_dim is not None:
            return self.latent_dim
        if self.is_table and self.input_shape is not None:
            return int(min(16, max(2, self.input_shape[0] // 2)))
        return self.image_latent

    def resolved_hidden(self) -> list[int]:
        if self.hidden is not None:
            return list(self.hidden)
        d = self.input_shape[0] if self.input_shape else 16
        return [max(8, d // 2)] * 2

    def resolved_samples(self) -> int:
        if self.n_samples is not None:
            return self.n_samples
        return 1000 if self.is_table else 16
