"""Model files: ``model.safetensors`` (tensors) + ``config.json`` (everything else).

safetensors holds raw tensors only, so loading one runs no code.  The JSON records a
SHA-256 of the tensor file; a file that was changed after saving, or one that is not
ours, is refused with a :class:`ModelFileError`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconad.errors import ModelFileError
from reconad.jsonfile import write_json

if TYPE_CHECKING:  # torch loads only where tensors are read or written: checks stay light
    import torch

FORMAT = "reconad-model"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def recorded_sha256(directory: str | os.PathLike) -> str | None:
    """The weights' SHA-256 that a model directory's config records (checked on every load)."""
    try:
        value = json.loads((Path(directory) / CONFIG).read_text()).get("weights_sha256")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def write_model_dir(directory: str | os.PathLike, state: dict[str, torch.Tensor], config: dict[str, Any]) -> Path:
    from safetensors.torch import save_file

    from reconad.atomic import atomic_path

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Each file is written whole or not at all (reconad.atomic); between the two renames the
    # config's checksum names the other weights, and loading refuses the pair in one line.
    with atomic_path(directory / WEIGHTS) as weights:
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        save_file(tensors, str(weights), metadata={"format": FORMAT})
        sha = sha256_of(weights)
    doc = {"format": FORMAT, "format_version": FORMAT_VERSION, **config, "weights_sha256": sha}
    write_json(directory / CONFIG, doc)
    return directory


def read_model_config(directory: str | os.PathLike) -> dict[str, Any]:
    """A model directory's config, once its format is known and its tensor file matches its
    recorded SHA-256 (ModelFileError naming the file otherwise); the tensors are not read."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ModelFileError(f"not a model directory: {directory}")
    cfg_path, weights = directory / CONFIG, directory / WEIGHTS
    if not cfg_path.exists() or not weights.exists():
        raise ModelFileError(f"{directory} holds no reconad model ({CONFIG} and {WEIGHTS} expected)")
    try:
        config = json.loads(cfg_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{cfg_path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ModelFileError(f"{cfg_path} is not a reconad model file")
    try:
        version = int(config.get("format_version", -1))
    except (TypeError, ValueError):
        raise ModelFileError(f"{cfg_path} has an invalid format_version: {config.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{cfg_path} was written by a newer reconad (format {config['format_version']})")
    if config.get("weights_sha256") != sha256_of(weights):
        raise ModelFileError(f"{weights} does not match its checksum in {CONFIG}: the file was modified or replaced")
    return config


def read_model_dir(directory: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config = read_model_config(directory)
    weights = Path(directory) / WEIGHTS
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"{weights} is not a valid safetensors file: {exc}") from exc
    return state, config
