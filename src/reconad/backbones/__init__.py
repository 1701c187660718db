"""Frozen ImageNet encoders that turn images into multi-scale feature maps.

Usage::

    pyramid = build_backbone("efficientnet_lite0")  # packaged pretrained weights
    maps = pyramid(images)  # images: float (B, 3, H, W) in [0, 1] -> list of 3 maps
    pyramid.channels, pyramid.strides  # [24, 40, 112], [4, 8, 16]

Stage indices (``layers``), 1-based:

* EfficientNet-Lite: the 7 block groups, strides 2, 4, 8, 16, 16, 32, 32; channels
  16, 24, 40, 80, 112, 192, 320 for lite0/lite1 (16, 24, 48, 88, 120, 208, 352 for
  lite2).  Default (2, 3, 5): strides 4/8/16, the wider of the two stride-16 groups.
* ``efficientnet_lite_ensemble``: Lite0, Lite1 and Lite2 side by side, the same stages,
  their channels joined (``reconad.backbones.ensemble``).
* ResNet: ``layer1`` .. ``layer4``, strides 4, 8, 16, 32.  Default (1, 2, 3).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from reconad.backbones.checkpoint import load_into, load_state_dict_file, packaged_lite_weights
from reconad.backbones.download import cached_weights, weights_cache
from reconad.backbones.efficientnet_lite import LITE_VARIANTS, EfficientNetLite
from reconad.backbones.ensemble import ENSEMBLE, MEMBERS, LiteEnsemble
from reconad.backbones.pyramid import FeaturePyramid, check_layers
from reconad.backbones.resnet import RESNET_SPECS, ResNet
from reconad.errors import ConfigError

__all__ = [
    "BACKBONES",
    "DEFAULT_LAYERS",
    "EfficientNetLite",
    "FeaturePyramid",
    "ResNet",
    "build_backbone",
    "build_classifier",
    "canonical_name",
    "efficientnet_lite_classifier",
    "imagenet_logits",
    "imagenet_preprocess",
    "imagenet_topk",
    "load_state_dict_file",
]

BACKBONES: tuple[str, ...] = (
    "efficientnet_lite0",
    "efficientnet_lite1",
    "efficientnet_lite2",
    ENSEMBLE,
    "resnet18",
    "resnet50",
    "wide_resnet50_2",
)

DEFAULT_LAYERS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys((*LITE_VARIANTS, ENSEMBLE), (2, 3, 5)),
    **dict.fromkeys(RESNET_SPECS, (1, 2, 3)),
}

_ALIASES = {**{f"lite{i}": f"efficientnet_lite{i}" for i in range(3)}, "lite_ensemble": ENSEMBLE}


def canonical_name(name: str) -> str:
    """``'lite0'``, ``'EfficientNet-Lite0'`` -> ``'efficientnet_lite0'``; ConfigError if unknown."""
    key = name.strip().lower().replace("-", "_") if isinstance(name, str) else None
    key = _ALIASES.get(key, key) if key is not None else None
    if key not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")
    return key


def _new_model(name: str) -> EfficientNetLite | ResNet:
    return EfficientNetLite(name) if name in LITE_VARIANTS else ResNet(name)


def _weights_source(name: str, weights: str | os.PathLike | None, pretrained: bool) -> str | os.PathLike | None:
    """The file to load (given path, else the packaged Lite file or a ResNet that
    ``reconad weights download`` cached), or None: random init."""
    if weights is not None:
        return weights
    if not pretrained:
        return None
    if name in RESNET_SPECS:
        cached = cached_weights(name)
        if cached is not None:
            return cached
        raise ConfigError(
            f"{name} has no bundled weights: fetch torchvision's with `reconad weights download {name}` "
            f"(cached in {weights_cache()}), or give a torchvision-format .pth/.safetensors state dict "
            "with --backbone-weights PATH (Python: backbone_weights=PATH; build_backbone: weights=PATH)"
        )
    return packaged_lite_weights(int(name[-1]))


def _load(model: EfficientNetLite | ResNet, source: str | os.PathLike | None, need_classifier: bool) -> None:
    if source is None:
        return
    # Feature extraction drops the classifier, so a checkpoint may lack it or differ there.
    optional: tuple[str, ...] = ()
    if not need_classifier:
        optional = ("_fc.",) if isinstance(model, EfficientNetLite) else ("fc.",)
    load_into(model, load_state_dict_file(source), source=str(source), optional_prefixes=optional)


def build_backbone(
    name: str = "efficientnet_lite0",
    layers: Sequence[int] | None = None,
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
) -> FeaturePyramid:
    """A frozen FeaturePyramid for ``name`` returning the maps of ``layers``.

    ``weights`` (a .pth/.pt/.safetensors state dict) always wins.  Without it,
    ``pretrained=True`` loads the packaged EfficientNet-Lite weights, or for a ResNet
    the file ``reconad weights download NAME`` cached (ConfigError when there is none),
    and ``pretrained=False`` keeps a random init.
    """
    canonical = canonical_name(name)
    if canonical == ENSEMBLE:
        model: EfficientNetLite | ResNet | LiteEnsemble = _ensemble(weights, pretrained)
    else:
        source = _weights_source(canonical, weights, pretrained)
        model = _new_model(canonical)
        _load(model, source, need_classifier=False)
    stages = check_layers(canonical, model, DEFAULT_LAYERS[canonical] if layers is None else layers)
    return FeaturePyramid(model, stages, canonical)


def _ensemble(weights: str | os.PathLike | None, pretrained: bool) -> LiteEnsemble:
    """The Lite ensemble with each member's packaged weights (one file cannot hold three)."""
    if weights is not None:
        raise ConfigError(
            f"{ENSEMBLE} loads the packaged weights of {', '.join(MEMBERS)}: it takes no backbone_weights file"
        )
    members = []
    for member in MEMBERS:
        model = EfficientNetLite(member)
        _load(model, _weights_source(member, None, pretrained), need_classifier=False)
        members.append(model)
    return LiteEnsemble(members)


def build_classifier(
    name: str, weights: str | os.PathLike | None = None, pretrained: bool = True
) -> EfficientNetLite | ResNet:
    """The full ImageNet classifier (eval mode); input must be normalised by the caller
    with ``model.input_mean`` / ``model.input_std`` (``imagenet_logits`` does it)."""
    canonical = canonical_name(name)
    if canonical == ENSEMBLE:
        raise ConfigError(f"{ENSEMBLE} is a feature encoder only: name one member ({', '.join(MEMBERS)})")
    source = _weights_source(canonical, weights, pretrained)
    model = _new_model(canonical)
    _load(model, source, need_classifier=True)
    return model.eval()


def efficientnet_lite_classifier(
    name: str = "efficientnet_lite0",
    weights: str | os.PathLike | None = None,
    pretrained: bool = True,
) -> EfficientNetLite:
    """The full EfficientNet-Lite classifier with the packaged (or given) weights."""
    canonical = canonical_name(name)
    if canonical not in LITE_VARIANTS:
        choices = ", ".join(LITE_VARIANTS)
        raise ConfigError(f"{name!r} is not EfficientNet-Lite; choose one of: {choices}")
    model = build_classifier(canonical, weights, pretrained)
    assert isinstance(model, EfficientNetLite)
    return model


def imagenet_preprocess(image: np.ndarray | torch.Tensor, size: int, crop_fraction: float = 0.875) -> torch.Tensor:
    """HxW[x3|4] image (uint8, or float in [0, 1]) -> (1, 3, size, size) float in [0, 1].

    Standard evaluation crop: the central ``crop_fraction`` of the shorter side,
    resized (bicubic, antialiased) to ``size``.
    """
    array = torch.as_tensor(np.asarray(image))
    if array.ndim == 2:
        array = array[..., None].expand(*array.shape, 3)
    if array.ndim != 3 or array.shape[-1] not in (3, 4):
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {tuple(array.shape)}")
    if array.dtype == torch.uint8:
        array = array.float() / 255.0
    elif not array.is_floating_point():
        raise ValueError(f"expected a uint8 image or floats in [0, 1], got dtype {array.dtype}")
    x = array[..., :3].permute(2, 0, 1)[None].float()
    h, w = x.shape[-2:]
    side = max(1, round(min(h, w) * crop_fraction))
    top, left = (h - side) // 2, (w - side) // 2
    x = x[..., top : top + side, left : left + side]
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True)
    return x.clamp(0.0, 1.0)


@torch.no_grad()
def imagenet_logits(model: EfficientNetLite | ResNet, image: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The 1000 ImageNet logits of ``model`` for one image (see ``imagenet_preprocess``)."""
    device = next(model.parameters()).device
    x = imagenet_preprocess(image, model.image_size).to(device)
    mean = torch.tensor(model.input_mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(model.input_std, device=device).view(1, 3, 1, 1)
    was_training = model.training
    model.eval()
    try:
        return model((x - mean) / std)[0]
    finally:
        model.train(was_training)


def imagenet_topk(
    model: EfficientNetLite | ResNet, image: np.ndarray | torch.Tensor, k: int = 5
) -> list[tuple[int, float]]:
    """The ``k`` most likely ImageNet classes as (class index, softmax probability)."""
    probs = imagenet_logits(model, image).softmax(-1)
    top = probs.topk(k)
    return [(int(i), float(p)) for p, i in zip(top.values, top.indices)]
