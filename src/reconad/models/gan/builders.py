"""Networks built from a :class:`GANConfig`: an image's conv plan, x -> z and z -> x for images or rows."""

from __future__ import annotations

from torch import nn

from reconad.models.gan.config import GANConfig
from reconad.models.gan.convs import ConvPlan, conv_plan
from reconad.models.gan.layers import mlp
from reconad.models.gan.networks import ImageEncoder, ImageGenerator
from reconad.models.gan.spectral import add_spectral_norm


def image_plan(cfg: GANConfig) -> ConvPlan:
    shape = cfg.input_shape
    assert shape is not None and len(shape) == 3
    return conv_plan(shape[0], shape[1:], cfg.width, cfg.min_size)


def build_encoder(cfg: GANConfig, spectral: bool = False, norm: str = "batch") -> nn.Module:
    """A BiGAN's x -> z: :class:`ImageEncoder` (``unit_code``, ``norm`` in its conv stages)
    for images, an MLP ``D -> hidden -> latent`` for rows."""
    latent = cfg.resolved_latent()
    if not cfg.is_table:
        return ImageEncoder(image_plan(cfg), latent, norm=norm, spectral=spectral, unit_code=True)
    assert cfg.input_shape is not None
    net = mlp([cfg.input_shape[0], *cfg.resolved_hidden(), latent])
    return add_spectral_norm(net) if spectral else net


def build_generator(cfg: GANConfig, norm: str = "batch") -> nn.Module:
    """z -> x: :class:`ImageGenerator` (``norm`` in its stages) for images, an MLP
    ``latent -> reversed(hidden) -> D`` (ReLU, no output activation) for rows."""
    latent = cfg.resolved_latent()
    if not cfg.is_table:
        assert cfg.input_shape is not None
        return ImageGenerator(image_plan(cfg), latent, cfg.input_shape[0], norm=norm)
    assert cfg.input_shape is not None
    hidden = list(reversed(cfg.resolved_hidden()))
    return mlp([latent, *hidden, 2 * hidden[-1], cfg.input_shape[0]], activation=nn.ReLU)
