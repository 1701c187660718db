"""Building blocks of the adversarial (GAN-based) models, for images and table rows.

AnoGAN, f-AnoGAN, EGBAD, ALAD, GANomaly, Skip-GANomaly, ALOCC, the constrained AAE,
ADAE, adVAE and CAVGA are built from these parts (and RSRAE borrows a few).  Everything
here is plain PyTorch; what is model-specific lives in each model's folder.  One job per
file:

* ``config.py``: :class:`GANConfig` and the checks the models' configs use;
* ``value_range.py``: :func:`to_signed`, :func:`pixel_residual`;
* ``layers.py``: DCGAN initialisation, norms, :func:`mlp`; ``spectral.py``: :class:`SpectralNorm`;
* ``convs.py``: :class:`ConvPlan` / :func:`conv_plan`, :class:`ConvTrunk`, :class:`ConvUp`;
* ``networks.py``: :class:`ImageEncoder`, :class:`ImageGenerator`, :class:`UNetGenerator`;
* ``discriminators.py``: image, row and (x, z) pair discriminators;
* ``builders.py``: encoder / generator for images or rows from a config;
* ``losses.py``: GAN losses and per-sample distances;
* ``base.py``: :class:`AdversarialModel`, the family's base class;
* ``bigan.py``: :class:`BiGAN`, EGBAD's and ALAD's shared networks and training step.

Conventions

* **Value range.**  Images arrive in [0, 1]; the networks see them in [-1, 1]
  (:func:`to_signed`) and generators end in ``tanh``, as in DCGAN and every paper of the
  family.  Maps are given back in [0, 1] units (``|x - x_hat|`` of the [0, 1] images).
  Table rows arrive scaled by the model's ``RowScaler`` (z-scores) and generators for
  rows have no output activation.
* **Geometry.**  :func:`conv_plan` halves an image with stride-2 4x4 convolutions until
  its longer side is at most ``min_size`` (28 -> 14 -> 7 -> 3; 32 -> ... -> 4; 256 -> ...
  -> 4), channels ``width, 2·width, ...`` capped at ``8·width`` so that 128-256 px inputs
  stay the size of a DCGAN.  Odd sizes are restored exactly on the way up
  (``output_size`` of the transposed convolutions).  So one family of networks serves
  28-64 px one-class sets and 128-256 px inspection images.
* **Discriminators** return ``(logits (B,), features (B, F))``: the features (the last
  hidden layer, flattened) serve feature matching losses and feature-residual scores.
* **Initialisation**: DCGAN's N(0, 0.02) for conv / transposed-conv / linear weights of
  the image networks, N(1, 0.02) for norm scales, biases zero (a BiGAN encoder's last
  layer excepted, see :class:`ImageEncoder`); MLPs keep PyTorch's default.  All of it
  draws from torch's global RNG, which the Detector seeds.
* **Spectral normalisation** (Miyato et al. 2018; ALAD uses it): ``spectral=True`` wraps
  every convolution and linear layer of a network with :class:`SpectralNorm` (PyTorch's
  scheme, written so that ONNX can export it); its power-iteration vectors are buffers,
  so they are saved, checkpointed and resumed like the weights.

Losses: :func:`bce`, :func:`discriminator_loss` (real -> 1, fake -> 0),
:func:`generator_loss` (non-saturating), :func:`wasserstein_critic_loss`,
:func:`gradient_penalty` (WGAN-GP), :func:`mean_squared` / :func:`mean_abs` per sample.

:class:`AdversarialModel` (``base.py``) is the base class of the family: the reconstruction models'
plumbing (images and rows, ``RowScaler``, ``predict_step`` from ``score``), GAN engine
defaults (``monitor="none"``, no early stopping, batch 64, lr 2e-4) and optimiser specs
with per-network learning rates and Adam betas from :class:`GANConfig`.
"""

from __future__ import annotations

from reconad.models.gan.base import AdversarialModel
from reconad.models.gan.bigan import BiGAN, Forward, build_pair_discriminator
from reconad.models.gan.builders import build_encoder, build_generator, image_plan
from reconad.models.gan.config import NORMS, GANConfig, check_betas, check_choice, check_lr, check_weights
from reconad.models.gan.convs import ConvPlan, ConvTrunk, ConvUp, conv_plan
from reconad.models.gan.discriminators import ImageDiscriminator, PairDiscriminator, RowDiscriminator, image_x_branch
from reconad.models.gan.layers import init_dcgan, leaky, mlp, norm1d, norm2d, reinitialise
from reconad.models.gan.losses import (
    bce,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    mean_abs,
    mean_squared,
    sum_abs,
    wasserstein_critic_loss,
)
from reconad.models.gan.networks import ImageEncoder, ImageGenerator, UNetGenerator
from reconad.models.gan.spectral import SpectralNorm, add_spectral_norm
from reconad.models.gan.value_range import pixel_residual, to_signed

__all__ = [
    "AdversarialModel",
    "BiGAN",
    "Forward",
    "build_pair_discriminator",
    "build_encoder",
    "build_generator",
    "image_plan",
    "NORMS",
    "GANConfig",
    "check_betas",
    "check_choice",
    "check_lr",
    "check_weights",
    "ConvPlan",
    "ConvTrunk",
    "ConvUp",
    "conv_plan",
    "ImageDiscriminator",
    "PairDiscriminator",
    "RowDiscriminator",
    "image_x_branch",
    "init_dcgan",
    "leaky",
    "mlp",
    "norm1d",
    "norm2d",
    "reinitialise",
    "bce",
    "discriminator_loss",
    "generator_loss",
    "gradient_penalty",
    "mean_abs",
    "mean_squared",
    "sum_abs",
    "wasserstein_critic_loss",
    "ImageEncoder",
    "ImageGenerator",
    "UNetGenerator",
    "SpectralNorm",
    "add_spectral_norm",
    "pixel_residual",
    "to_signed",
]
