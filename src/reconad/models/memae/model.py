"""Memory-augmented autoencoder (MemAE; Gong et al., ICCV 2019).

encoder -> z -> memory addressing -> z_hat = w·M -> decoder.  For a query z and
the N memory slots m_i:

    w_i   = softmax_i( cos(z, m_i) / temperature )            (paper eq. 4 has temperature 1;
                                                                 default 0.01, see MemAEConfig)
    w'_i  = max(w_i - lambda, 0) · w_i / (|w_i - lambda| + eps)  (hard shrinkage, ReLU form)
    w''_i = w'_i / sum_j w'_j                                  (L1 re-normalisation)

loss = mean squared reconstruction error + alpha · mean over queries of the
entropy -sum_i w''_i log w''_i.  Score = mean squared reconstruction error.

Images: like the official code, the memory addresses each spatial position of the
encoder's conv map (a query per position, of the map's channel size); ``query="image"``
addresses the whole map as one query instead.  Video clips
([C, T, H, W], the paper's video experiments): a 3-D conv encoder/decoder
(``reconad.models.networks3d``) and a query per position of the 3-D feature map.  Rows: one
query per row, the MLP code.  The official code scores slots with a plain dot
product; we follow the paper's cosine similarity.

Deviations that remain (measured in BENCHMARKS §16.1): the image networks are the
library's shared ones (stride-2 4 x 4 convolutions of ``width`` x 1, 2, 4 channels, 32-64-128
by default), not the paper's MNIST network (3 x 3 convolutions, 16-32-64: ``width=16`` is
closest, and scored lower here for both AE and MemAE); the addressing temperature (see
``MemAEConfig``); the shrinkage threshold 1/N rather than the official code's fixed 0.0025.
The official video recipe (dot-product addressing, [-1, 1] frames, 0.0025, its network,
initialisation and training) is the preset ``paper``: ``reconad.models.memae.paper``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from reconad.errors import ConfigError
from reconad.models.memae.config import MemAEConfig
from reconad.models.memae.paper import PAPER, VideoRecipe
from reconad.models.networks import ConvDecoder, ConvEncoder, mlp
from reconad.models.networks3d import Conv3dDecoder, Conv3dEncoder, normal_init
from reconad.models.reconstruction import ReconstructionModel, squared_error


def hard_shrink(w: torch.Tensor, threshold: float, eps: float = 1e-12) -> torch.Tensor:
    """ReLU form of hard shrinkage for non-negative weights: w where w > threshold, else 0."""
    return F.relu(w - threshold) * w / ((w - threshold).abs() + eps)


class Memory(nn.Module):
    """N slots of ``dim`` numbers, addressed by softmax over cosine similarity."""

    def __init__(
        self, n_slots: int, dim: int, threshold: float, temperature: float = 1.0, similarity: str = "cosine"
    ) -> None:
        super().__init__()
        self.threshold = threshold
        self.temperature = temperature
        self.similarity = similarity
        bound = 1.0 / math.sqrt(dim)
        self.slots = nn.Parameter(torch.empty(n_slots, dim).uniform_(-bound, bound))

    def address(self, z: torch.Tensor) -> torch.Tensor:
        """Addressing weights (Q, N) of queries (Q, dim): sparse, rows sum to 1 (or all 0)."""
        if self.similarity == "dot":
            sim = z @ self.slots.t()
        else:
            sim = F.normalize(z, dim=1) @ F.normalize(self.slots, dim=1).t()
        w = torch.softmax(sim / self.temperature, dim=1)
        if self.threshold > 0:
            w = hard_shrink(w, self.threshold)
            w = w / w.sum(dim=1, keepdim=True).clamp_min(1e-12)
        return w

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.address(z)
        return w @ self.slots, w


def addressing_entropy(w: torch.Tensor) -> torch.Tensor:
    return -(w * torch.log(w + 1e-12)).sum(dim=1).mean()


class MemAE(ReconstructionModel):
    name = "memae"
    input_kinds = ("image", "table", "video")
    #: named settings (``Detector("memae", preset="paper")``); the options a user passes win.
    #: ``paper`` is the model part of the video recipe ``reconad.models.memae.paper.PAPER``
    #: (its docstring lists every departure from the official code).
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": dict(PAPER.model)}
    #: the whole recipes behind the presets (model, engine and clip settings), which the
    #: video protocol applies (``reconad benchmark video --preset paper``)
    video_recipes: ClassVar[dict[str, VideoRecipe]] = {"paper": PAPER}

    def __init__(self, config: MemAEConfig | None = None, **kwargs: Any) -> None:
        super().__init__(config or MemAEConfig(**kwargs))
        cfg = self.config
        shape = cfg.input_shape
        if self.is_table:
            latent = cfg.resolved_latent()
            self.encoder: nn.Module = mlp([shape[0], *cfg.resolved_hidden(), latent])
            self.decoder: nn.Module = mlp([latent, *reversed(cfg.resolved_hidden()), shape[0]])
            dim = latent
        elif self.is_video:
            conv3 = Conv3dEncoder(shape[0], (shape[1], shape[2], shape[3]), cfg.width)
            output = "linear" if cfg.input_range == "signed" else "sigmoid"
            self.encoder, self.decoder, dim = conv3, Conv3dDecoder(conv3, output), conv3.out_channels
        else:
            conv = ConvEncoder(shape[0], (shape[1], shape[2]), cfg.width, cfg.min_size)
            self.encoder = conv
            self.decoder = ConvDecoder(conv)
            dim = conv.out_channels
            if cfg.query == "image":
                dim *= conv.out_size[0] * conv.out_size[1]
        if cfg.input_range == "signed" and not self.is_video:
            raise ConfigError("input_range='signed' is for video clips only (images and rows come as they are)")
        self.memory = Memory(cfg.resolved_memory_size(), dim, cfg.resolved_threshold(), cfg.temperature, cfg.similarity)
        if cfg.weight_init == "normal":
            normal_init(self)

    def model_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the networks see and the errors are measured against: ``x`` itself, or clips
        scaled from [0, 1] to [-1, 1] (``input_range="signed"``)."""
        return x * 2.0 - 1.0 if self.is_video and self.config.input_range == "signed" else x

    def reconstruct(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction, addressing weights (queries, N)) of a model input (:meth:`model_input`)."""
        z = self.encoder(x)
        if self.is_table:
            z_hat, w = self.memory(z)
        elif self.is_video:  # a query per (t, h, w) position of the 3-D feature map
            c = z.shape[1]
            q_hat, w = self.memory(z.movedim(1, -1).reshape(-1, c))
            z_hat = q_hat.view(*z.movedim(1, -1).shape).movedim(-1, 1)
        elif self.config.query == "image":
            q_hat, w = self.memory(z.flatten(1))
            z_hat = q_hat.view_as(z)
        else:
            b, c, h, w_ = z.shape
            q = z.permute(0, 2, 3, 1).reshape(-1, c)
            q_hat, w = self.memory(q)
            z_hat = q_hat.view(b, h, w_, c).permute(0, 3, 1, 2)
        return self.decoder(z_hat), w

    def loss(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.model_input(x)
        x_hat, w = self.reconstruct(x)
        return squared_error(x, x_hat)[0].mean() + self.config.entropy_weight * addressing_entropy(w)

    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.model_input(x)
        return squared_error(x, self.reconstruct(x)[0])
