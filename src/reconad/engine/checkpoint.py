"""Per-epoch checkpoints as safetensors + JSON (never pickle)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            flat = f"optim.{name}.{idx}.{key}"
            if torch.is_tensor(value):
                tensors[flat] = value.detach().cpu().contiguous()
            else:
                scalars[flat] = value
    meta = {"param_groups": sd["param_groups"], "scalars": scalars}
    return tensors, meta


def _unflatten_optimizer(name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"optim.{name}."
    items = list(tensors.items()) + list(meta.get("scalars", {}).items())
    for flat, value in items:
        if not flat.startswith(prefix):
            continue
        idx, key = flat[len(prefix) :].split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: str | os.PathLike,
    model_state: dict[str, torch.Tensor],
    optimizers: dict[str, torch.optim.Optimizer],
    info: dict[str, Any],
) -> Path:
    """Write ``last.safetensors`` + ``last.json`` atomically (rename)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model_state.items()}
    optim_meta: dict[str, Any] = {}
    for name, opt in optimizers.items():
        t, meta = _flatten_optimizer(name, opt)
        tensors.update(t)
        optim_meta[name] = meta
    tmp = directory / "last.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / "last.safetensors")
    doc = dict(info, optimizers=optim_meta)
    tmp_json = directory / "last.json.tmp"
    tmp_json.write_text(json.dumps(doc, indent=1))
    os.replace(tmp_json, directory / "last.json")
    return directory / "last.safetensors"


def load_checkpoint(
    directory: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]], dict[str, Any]] | None:
    """Return (model_state, optimizer_states, info) or None when there is no checkpoint."""
    directory = Path(directory)
    st, js = directory / "last.safetensors", directory / "last.json"
    if not (st.exists() and js.exists()):
        return None
    tensors = load_file(str(st))
    info = json.loads(js.read_text())
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    optim_states = {
        name: _unflatten_optimizer(name, tensors, meta) for name, meta in info.pop("optimizers", {}).items()
    }
    return model_state, optim_states, info
