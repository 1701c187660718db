"""Small parts of every GAN network: DCGAN initialisation, norms, activations, MLPs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn


def init_dcgan(module: nn.Module) -> None:
    """DCGAN's initialisation, in place: N(0, 0.02) weights, N(1, 0.02) norm scales, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def reinitialise(module: nn.Module, dcgan: bool) -> None:
    """Fresh weights for a network (from torch's global RNG): DCGAN's for image networks,
    PyTorch's defaults (``reset_parameters``) otherwise."""
    for m in module.modules():
        reset = getattr(m, "reset_parameters", None)
        if m is not module and callable(reset):
            reset()
    if dcgan:
        init_dcgan(module)


def norm2d(kind: str, channels: int) -> nn.Module:
    """``batch``, ``layer`` (over C, H, W, as WGAN-GP critics use) or ``none``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def norm1d(kind: str, features: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(features)
    if kind == "layer":
        return nn.LayerNorm(features)
    return nn.Identity()


def leaky() -> nn.Module:
    return nn.LeakyReLU(0.2)


def mlp(
    dims: Sequence[int],
    norm: str = "none",
    dropout: float = 0.0,
    last_activation: bool = False,
    activation: Callable[[], nn.Module] = leaky,
) -> nn.Sequential:
    """Linear layers ``dims[0] -> ... -> dims[-1]``; norm, activation and dropout after each
    hidden layer (and after the last with ``last_activation``)."""
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2 or last_activation:
            layers += [norm1d(norm, dims[i + 1]), activation()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)
