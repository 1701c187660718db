"""Building blocks of the adversarial (GAN-based) models, for images and table rows.

AnoGAN, f-AnoGAN, EGBAD, ALAD, GANomaly and Skip-GANomaly are built from these parts,
and so can the models still to come (ALOCC, constrained AAE, ADAE, adVAE, CAVGA).
Everything here is plain PyTorch; what is model-specific lives in each model's folder.

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

:class:`AdversarialModel` is the base class of the family: the reconstruction models'
plumbing (images and rows, ``RowScaler``, ``predict_step`` from ``score``), GAN engine
defaults (``monitor="none"``, no early stopping, batch 64, lr 2e-4) and optimiser specs
with per-network learning rates and Adam betas from :class:`GANConfig`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from reconad.data.records import ImageBatch, RowBatch
from reconad.engine.config import check_types
from reconad.engine.step import OptimizerSpec, StepContext, StepOutput
from reconad.errors import ConfigError
from reconad.models.base import ScoreOutput
from reconad.models.networks import NetConfig
from reconad.models.reconstruction import ReconstructionModel

NORMS = ("batch", "layer", "none")


# ---------------------------------------------------------------------- settings
def _check_betas(name: str, betas: Any) -> list[float]:
    ok = (
        isinstance(betas, (list, tuple))
        and len(betas) == 2
        and all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1 for b in betas)
    )
    if not ok:
        raise ConfigError(f"{name} must be two numbers in [0, 1), got {betas!r}")
    return [float(b) for b in betas]


def _check_lr(name: str, lr: Any) -> None:
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0):
        raise ConfigError(f"{name} must be a number > 0 (or null for the engine's lr), got {lr!r}")


@dataclass
class GANConfig(NetConfig):
    """Settings every adversarial model shares (plus :class:`NetConfig`'s network settings).

    lr_g, lr_d: learning rates of the generator side and the discriminator side; None
    takes the engine's ``lr`` (the models' engine default is 2e-4, DCGAN's).
    betas_g, betas_d: their Adam betas; (0.5, 0.999) is DCGAN's, used by AnoGAN, EGBAD,
    ALAD, GANomaly and Skip-GANomaly.
    spectral_norm: spectral normalisation of the discriminator side (and, where the
    model says so, the encoder); off unless a model's docstring says otherwise.
    ema_decay: an exponential moving average of every weight, kept during training and
    put in place of the weights once training ends (what is scored, saved and exported);
    0 = off.  The decay of step t is min(ema_decay, (1 + t) / (10 + t)), so that a short
    run averages its last steps rather than its initialisation.  The last weights of a
    GAN depend on which side won the last few steps; their average does not, so seeds
    and epoch counts agree.  Off unless a model says otherwise.
    latent_dim: size of z; None = the model's paper value for images (``image_latent``)
    and ``table_latent`` for rows.
    """

    lr_g: float | None = None
    lr_d: float | None = None
    betas_g: list[float] = field(default_factory=lambda: [0.5, 0.999])
    betas_d: list[float] = field(default_factory=lambda: [0.5, 0.999])
    spectral_norm: bool = False
    ema_decay: float = 0.0

    image_latent: ClassVar[int] = 100
    table_latent: ClassVar[int] = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_lr("lr_g", self.lr_g)
        _check_lr("lr_d", self.lr_d)
        self.betas_g = _check_betas("betas_g", self.betas_g)
        self.betas_d = _check_betas("betas_d", self.betas_d)
        check_types(self, numbers=("ema_decay",))
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def resolved_latent(self) -> int:
        if self.latent_dim is not None:
            return self.latent_dim
        return self.table_latent if self.is_table else self.image_latent

    def resolved_hidden(self) -> list[int]:
        return list(self.hidden) if self.hidden is not None else [64]


def check_weights(cfg: Any, *names: str) -> None:
    """ConfigError unless every named field is a number >= 0."""
    check_types(cfg, numbers=names)
    for name in names:
        if getattr(cfg, name) < 0:
            raise ConfigError(f"{name} must be >= 0, got {getattr(cfg, name)}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(choices)}")


# ------------------------------------------------------------------- value range
def to_signed(images: torch.Tensor) -> torch.Tensor:
    """[0, 1] images -> [-1, 1], the range the networks (and tanh generators) work in."""
    return images * 2.0 - 1.0


def pixel_residual(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """|x - x_hat| of [-1, 1] images, in [0, 1] image units (what the maps show)."""
    return (x - x_hat).abs() * 0.5


# ------------------------------------------------------------------------ layers
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


class SpectralNorm(nn.Module):
    """Parametrisation weight -> weight / sigma(weight) (Miyato et al. 2018).

    sigma is estimated by power iteration: one step per forward pass in training mode,
    fifteen at construction, the vectors u, v kept as buffers (saved, checkpointed,
    resumed).  The same scheme as ``torch.nn.utils.parametrizations.spectral_norm``, but
    sigma is written as ``sum(u * (W v))`` instead of ``torch.vdot``, which ONNX cannot
    export, so spectrally normalised scoring graphs export.
    """

    _u: torch.Tensor
    _v: torch.Tensor

    def __init__(self, weight: torch.Tensor, dim: int = 0, eps: float = 1e-12) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        mat = self._matrix(weight.detach())
        self.register_buffer("_u", F.normalize(mat.new_empty(mat.shape[0]).normal_(), dim=0, eps=eps))
        self.register_buffer("_v", F.normalize(mat.new_empty(mat.shape[1]).normal_(), dim=0, eps=eps))
        self._power_iteration(mat, 15)

    def _matrix(self, weight: torch.Tensor) -> torch.Tensor:
        return (weight.movedim(self.dim, 0) if self.dim else weight).flatten(1)

    @torch.no_grad()
    def _power_iteration(self, mat: torch.Tensor, steps: int) -> None:
        for _ in range(steps):
            self._v.copy_(F.normalize(mat.t() @ self._u, dim=0, eps=self.eps))
            self._u.copy_(F.normalize(mat @ self._v, dim=0, eps=self.eps))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        mat = self._matrix(weight)
        if self.training:
            self._power_iteration(mat.detach(), 1)
        u, v = self._u.clone(), self._v.clone()  # the graph keeps these, not the buffers updated later
        return weight / (u * (mat @ v)).sum()


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (:class:`SpectralNorm`) of every convolution and linear layer in ``module``."""
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and not parametrize.is_parametrized(child):
            dim = 1 if isinstance(child, nn.ConvTranspose2d) else 0
            parametrize.register_parametrization(child, "weight", SpectralNorm(child.weight, dim))
    return module


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


# ---------------------------------------------------------------------- geometry
@dataclass(frozen=True)
class ConvPlan:
    """Map sizes and channels of each stage of a halving conv stack (index 0 = the input)."""

    sizes: tuple[tuple[int, int], ...]
    channels: tuple[int, ...]

    @property
    def stages(self) -> int:
        return len(self.sizes) - 1

    @property
    def out_channels(self) -> int:
        return self.channels[-1]

    @property
    def out_size(self) -> tuple[int, int]:
        return self.sizes[-1]

    @property
    def out_features(self) -> int:
        h, w = self.out_size
        return self.out_channels * h * w


def conv_plan(in_channels: int, size: Sequence[int], width: int, min_size: int = 4, min_stages: int = 0) -> ConvPlan:
    """Stride-2 4x4 stages (padding 1) until the longer side is at most ``min_size`` and
    there are at least ``min_stages`` stages (while the shorter side is at least 4 px)."""
    h, w = int(size[0]), int(size[1])
    sizes, channels = [(h, w)], [in_channels]
    i = 0
    while (max(h, w) > min_size or i < min_stages) and min(h, w) >= 4:
        h, w = h // 2, w // 2
        sizes.append((h, w))
        channels.append(width * min(2**i, 8))
        i += 1
    if len(sizes) == 1:
        raise ConfigError(f"image of size {h}x{w} is too small for the conv networks (at least 8 px)")
    return ConvPlan(tuple(sizes), tuple(channels))


class ConvTrunk(nn.Module):
    """The downsampling stack of DCGAN's discriminator / encoder: conv 4x4 s2 -> norm -> LeakyReLU.

    The first stage has no normalisation (as in DCGAN).  ``forward`` gives the last map;
    ``stages`` every stage's output (U-Net skips).
    """

    def __init__(self, plan: ConvPlan, norm: str = "batch", dropout: float = 0.0, first_norm: bool = False) -> None:
        super().__init__()
        self.plan = plan
        self.blocks = nn.ModuleList()
        for k in range(plan.stages):
            c_in, c_out = plan.channels[k], plan.channels[k + 1]
            use_norm = norm != "none" and (k > 0 or first_norm)
            block: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not use_norm),
                norm2d(norm if use_norm else "none", c_out),
                leaky(),
            ]
            if dropout > 0:
                block.append(nn.Dropout(dropout))
            self.blocks.append(nn.Sequential(*block))

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for block in self.blocks:
            x = block(x)
            out.append(x)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class ConvUp(nn.Module):
    """The upsampling stack of DCGAN's generator, mirroring a :class:`ConvPlan`:
    transposed conv 4x4 s2 -> norm -> ReLU, the last stage to ``out_channels`` and tanh.

    ``skip=True`` makes each stage but the first take its input concatenated with the
    encoder map of the same size (U-Net)."""

    def __init__(self, plan: ConvPlan, out_channels: int, norm: str = "batch", skip: bool = False) -> None:
        super().__init__()
        self.sizes = list(reversed(plan.sizes))
        chans = list(reversed(plan.channels))
        chans[-1] = out_channels
        self.skip = skip
        self.ups = nn.ModuleList()
        self.posts = nn.ModuleList()
        for k in range(plan.stages):
            last = k == plan.stages - 1
            c_in = chans[k] * (2 if skip and k > 0 else 1)
            use_norm = norm != "none" and not last
            self.ups.append(nn.ConvTranspose2d(c_in, chans[k + 1], 4, stride=2, padding=1, bias=not use_norm))
            self.posts.append(nn.Tanh() if last else nn.Sequential(norm2d(norm, chans[k + 1]), nn.ReLU()))

    def forward(self, x: torch.Tensor, skips: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """``skips``: the encoder's stage outputs from the input side (U-Net), else empty."""
        for k, (up, post) in enumerate(zip(self.ups, self.posts)):
            if self.skip and k > 0:
                x = torch.cat([x, skips[len(skips) - k]], dim=1)
            x = post(up(x, output_size=self.sizes[k + 1]))
        return x


# ---------------------------------------------------------------------- networks
class ImageEncoder(nn.Module):
    """Image (B, C, H, W) in [-1, 1] -> code (B, out_dim): :class:`ConvTrunk` and a linear layer
    over the whole last map (DCGAN's final "valid" convolution).

    ``unit_code=True`` keeps PyTorch's default initialisation for that last layer, so the
    codes start at about unit scale.  A BiGAN's encoder needs it: with DCGAN's N(0, 0.02)
    its codes start near 0, the joint discriminator tells E(x) from z ~ N(0, I) by their
    scale alone, and the generator learns next to nothing for hundreds of steps (on the
    test suite's toy bars, ALAD's AUROC after 100 steps: 0.41 with DCGAN's, 1.00 with it).
    """

    def __init__(
        self, plan: ConvPlan, out_dim: int, norm: str = "batch", spectral: bool = False, unit_code: bool = False
    ) -> None:
        super().__init__()
        self.trunk = ConvTrunk(plan, norm)
        self.head = nn.Linear(plan.out_features, out_dim)
        init_dcgan(self)
        if unit_code:
            self.head.reset_parameters()
        if spectral:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(x).flatten(1))


class ImageGenerator(nn.Module):
    """Code (B, latent) -> image (B, C, H, W) in [-1, 1]: a linear layer to the smallest map
    (DCGAN's first 4x4 transposed convolution), norm, ReLU, then :class:`ConvUp`."""

    def __init__(self, plan: ConvPlan, latent_dim: int, out_channels: int, norm: str = "batch") -> None:
        super().__init__()
        h, w = plan.out_size
        self.shape = (plan.out_channels, h, w)
        self.project = nn.Linear(latent_dim, plan.out_features, bias=norm == "none")
        self.project_post = nn.Sequential(norm2d(norm, plan.out_channels), nn.ReLU())
        self.up = ConvUp(plan, out_channels, norm)
        init_dcgan(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z).view(z.shape[0], *self.shape)
        return self.up(self.project_post(x))


class ImageDiscriminator(nn.Module):
    """Image -> (logits (B,), features (B, F)); features = the flattened last map of the trunk."""

    def __init__(self, plan: ConvPlan, norm: str = "batch", spectral: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.trunk = ConvTrunk(plan, norm, dropout)
        self.head = nn.Linear(plan.out_features, 1)
        init_dcgan(self)
        if spectral:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(x).flatten(1)
        return self.head(features).squeeze(1), features


class RowDiscriminator(nn.Module):
    """Row (or code, or a concatenated pair) -> (logits (B,), features (B, hidden[-1]))."""

    def __init__(
        self, in_dim: int, hidden: Sequence[int], norm: str = "none", spectral: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.body = mlp([in_dim, *hidden], norm, dropout, last_activation=True)
        self.head = nn.Linear(hidden[-1], 1)
        if spectral:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.body(x)
        return self.head(features).squeeze(1), features


class PairDiscriminator(nn.Module):
    """BiGAN's joint discriminator D(x, z) -> (logits (B,), features (B, joint)).

    ``x_branch`` maps x to a flat vector of ``x_features`` numbers (a conv trunk and flatten
    for images, an MLP for rows); z goes through an MLP of ``z_hidden``; both are
    concatenated and go through one hidden layer of ``joint`` (the features) to the logit.
    """

    def __init__(
        self,
        x_branch: nn.Module,
        x_features: int,
        latent_dim: int,
        z_hidden: int,
        joint: int,
        dropout: float = 0.0,
        spectral: bool = False,
    ) -> None:
        super().__init__()
        self.x_branch = x_branch
        self.z_branch = mlp([latent_dim, z_hidden], dropout=dropout, last_activation=True)
        self.joint = mlp([x_features + z_hidden, joint], dropout=dropout, last_activation=True)
        self.head = nn.Linear(joint, 1)
        if spectral:
            add_spectral_norm(self)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.joint(torch.cat([self.x_branch(x).flatten(1), self.z_branch(z)], dim=1))
        return self.head(features).squeeze(1), features


def image_x_branch(plan: ConvPlan, dropout: float = 0.0) -> nn.Module:
    """The image side of a :class:`PairDiscriminator`: a conv trunk, flattened (plan.out_features)."""
    trunk = nn.Sequential(ConvTrunk(plan, "batch", dropout), nn.Flatten())
    init_dcgan(trunk)
    return trunk


class UNetGenerator(nn.Module):
    """Image -> image of the same size: a :class:`ConvTrunk` down to at most ``min_size`` px
    and a :class:`ConvUp` whose stages also take the encoder map of the same size (skip
    connections, as the U-Net generator of pix2pix and Skip-GANomaly)."""

    def __init__(self, plan: ConvPlan, norm: str = "batch") -> None:
        super().__init__()
        self.down = ConvTrunk(plan, norm)
        self.up = ConvUp(plan, plan.channels[0], norm, skip=True)
        init_dcgan(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stages = self.down.stages(x)
        return self.up(stages[-1], stages[:-1])


# ------------------------------------------------------- builders from a config
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


def build_pair_discriminator(cfg: GANConfig, joint: int, dropout: float, spectral: bool = False) -> PairDiscriminator:
    """BiGAN's D(x, z): a conv trunk (images) or a 128-unit layer with batch norm (rows) for
    x, a 512- (images) or 128-unit (rows) layer for z, and a ``joint`` hidden layer."""
    latent = cfg.resolved_latent()
    if cfg.is_table:
        assert cfg.input_shape is not None
        x_branch: nn.Module = mlp([cfg.input_shape[0], 128], norm="batch", last_activation=True)
        return PairDiscriminator(x_branch, 128, latent, 128, joint, dropout, spectral)
    plan = image_plan(cfg)
    return PairDiscriminator(image_x_branch(plan, dropout), plan.out_features, latent, 512, joint, dropout, spectral)


# ------------------------------------------------------------------------ losses
def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` against a constant label (1 real, 0 fake)."""
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(target)))


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The standard GAN discriminator loss: real -> 1, fake -> 0."""
    return bce(real_logits, 1.0) + bce(fake_logits, 0.0)


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss: make the discriminator call fakes real."""
    return bce(fake_logits, 1.0)


def wasserstein_critic_loss(real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
    """WGAN critic loss E[C(fake)] - E[C(real)] (to minimise)."""
    return fake_scores.mean() - real_scores.mean()


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """WGAN-GP (Gulrajani et al. 2017): E[(||grad C(x_mix)||_2 - 1)^2] at random points
    between real and fake samples (mixing weights from torch's global RNG)."""
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    mixed = (real + alpha * (fake - real)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2).mean()


def mean_squared(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of (a - b)^2 over every non-batch axis, (B,)."""
    return (a - b).pow(2).flatten(1).mean(dim=1)


def mean_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample mean of |a - b| over every non-batch axis, (B,)."""
    return (a - b).abs().flatten(1).mean(dim=1)


def sum_abs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample L1 norm ||a - b||_1 over every non-batch axis, (B,)."""
    return (a - b).abs().flatten(1).sum(dim=1)


# -------------------------------------------------------------------- base class
def _ema_name(param_name: str) -> str:
    return "ema__" + param_name.replace(".", "__")


class AdversarialModel(ReconstructionModel):
    """Base of the GAN family: images and rows like the reconstruction models, GAN defaults.

    Subclasses build their networks in ``__init__``, implement ``training_step`` (one
    ``ctx.step`` per optimiser they declare in ``optimizer_specs``) and ``score(x)``,
    which returns (scores (B,), an element-wise residual shaped like x in [0, 1] units,
    whose channel mean is the map).  ``x`` is what :meth:`inputs` gives: [-1, 1] images or
    scaled rows.  Held-out normals are scored each epoch (``val_score``, logged only:
    ``monitor="none"`` keeps the last epoch, since a GAN's losses say little about quality).
    """

    config: GANConfig
    #: GAN engine defaults (DCGAN's batch and learning rate); the user's options win.
    train_defaults: ClassVar[dict[str, Any]] = {"batch_size": 64, "epochs": 15, "lr": 2e-4, "patience": None}
    default_monitor: ClassVar[str] = "none"
    #: set by image-only models (their papers have no table variant)
    image_only: ClassVar[bool] = False
    #: set by models whose training step keeps the weight average (``ema_decay``)
    keeps_weight_average: ClassVar[bool] = False

    def __init__(self, config: GANConfig) -> None:
        if self.image_only and config.is_table:
            raise ConfigError(f"model {self.name} takes images only; for tables use egbad, alad or ganomaly")
        if config.ema_decay > 0 and not self.keeps_weight_average:
            raise ConfigError(f"model {self.name} keeps no weight average; ema_decay is for alad and egbad")
        super().__init__(config)

    # ---------------------------------------------------------- weight average
    def track_weight_average(self) -> None:
        """Start the moving average of every weight (``config.ema_decay`` > 0); subclasses
        call it once their networks exist.  The averages are buffers, so checkpoints,
        resumes and saved models keep them."""
        if self.config.ema_decay <= 0:
            return
        for name, p in self.named_parameters():
            self.register_buffer(_ema_name(name), p.detach().clone())
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def update_weight_average(self) -> None:
        """One step of the average, after a training step has updated the weights."""
        if self.config.ema_decay <= 0:
            return
        counter = self.get_buffer("ema_updates")
        t = float(counter)
        decay = min(self.config.ema_decay, (1.0 + t) / (10.0 + t))
        for name, p in self.named_parameters():
            self.get_buffer(_ema_name(name)).lerp_(p.detach(), 1.0 - decay)
        counter.add_(1)

    @torch.no_grad()
    def use_weight_average(self) -> None:
        """Put the averaged weights in place of the last ones (at the end of training)."""
        if self.config.ema_decay <= 0:
            return
        for name, p in self.named_parameters():
            p.copy_(self.get_buffer(_ema_name(name)))

    def on_fit_end(self, train_data: Any, val_data: Any, device: torch.device) -> None:
        self.use_weight_average()

    # ------------------------------------------------------------------ inputs
    def inputs(self, batch: ImageBatch | RowBatch) -> torch.Tensor:
        """The network input of a batch: [-1, 1] images or scaled rows (shape-checked)."""
        x, _ = self.batch_inputs(batch)
        return x if self.is_table else to_signed(x)

    def residual(self, x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
        """Element-wise |x - x_hat| (images in [0, 1] units, rows in scaled units)."""
        return (x - x_hat).abs() if self.is_table else pixel_residual(x, x_hat)

    def latent_noise(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """z ~ N(0, I) from torch's global RNG (saved and restored with every checkpoint)."""
        return torch.randn(n, self.config.resolved_latent(), device=like.device, dtype=like.dtype)

    # --------------------------------------------------------------- training
    def spec(self, params: Any, lr: float | None, betas: Sequence[float]) -> OptimizerSpec:
        """An Adam spec with this network's own learning rate (None: the engine's) and betas."""
        return OptimizerSpec(list(params), lr=lr, betas=(float(betas[0]), float(betas[1])))

    def training_step(self, batch: Any, ctx: StepContext) -> StepOutput:
        raise NotImplementedError

    @torch.no_grad()
    def validation_step(self, batch: Any) -> dict[str, float]:
        scores, _ = self.score(self.inputs(batch))
        return {"score": float(scores.mean())}

    # ---------------------------------------------------------------- scoring
    def score(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def predict_step(self, batch: Any) -> ScoreOutput:
        if not isinstance(batch, (ImageBatch, RowBatch)):
            raise TypeError(f"{self.name} scores images or table rows, got {type(batch).__name__}")
        scores, err = self.score(self.inputs(batch))
        return ScoreOutput(scores, None if self.is_table else err.mean(dim=1))


__all__ = [
    "GANConfig",
    "AdversarialModel",
    "ConvPlan",
    "conv_plan",
    "ConvTrunk",
    "ConvUp",
    "ImageEncoder",
    "ImageGenerator",
    "ImageDiscriminator",
    "RowDiscriminator",
    "PairDiscriminator",
    "UNetGenerator",
    "image_x_branch",
    "image_plan",
    "build_encoder",
    "build_generator",
    "build_pair_discriminator",
    "mlp",
    "init_dcgan",
    "reinitialise",
    "add_spectral_norm",
    "SpectralNorm",
    "to_signed",
    "pixel_residual",
    "bce",
    "discriminator_loss",
    "generator_loss",
    "wasserstein_critic_loss",
    "gradient_penalty",
    "mean_squared",
    "mean_abs",
    "sum_abs",
    "check_weights",
    "check_choice",
]
