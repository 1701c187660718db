"""Per-epoch checkpoints as safetensors + JSON (never pickle).

``last.safetensors`` holds the model's trainable tensors (``model.*``), every
optimiser's state tensors (``optim.<name>.<param>.<key>``) and the random-number
generator states (``rng.*``); ``last.json`` holds the rest: epoch, global step, the
model's step counters, the schedulers' states, the optimisers' param groups and the
training history.  Both are written to a temporary file and renamed, so a kill leaves
the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file


@dataclass
class Checkpoint:
    """Everything needed to continue training exactly where it stopped."""

    model_state: dict[str, torch.Tensor]
    optimizer_states: dict[str, dict[str, Any]]
    info: dict[str, Any]
    scheduler_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)
    rng: dict[str, torch.Tensor] = field(default_factory=dict)


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


def rng_states() -> dict[str, torch.Tensor]:
    """The torch generators' states (CPU, and each CUDA device in use)."""
    states = {"rng.cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            states[f"rng.cuda{i}"] = s
    return states


def restore_rng(states: dict[str, torch.Tensor]) -> None:
    if "rng.cpu" in states:
        torch.set_rng_state(states["rng.cpu"])
    cuda = [states[k] for k in sorted(states) if k.startswith("rng.cuda")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda[: torch.cuda.device_count()])


def _atomic_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | os.PathLike,
    model_state: dict[str, torch.Tensor],
    optimizers: dict[str, torch.optim.Optimizer],
    info: dict[str, Any],
    schedulers: dict[str, Any] | None = None,
    counters: dict[str, int] | None = None,
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
    tensors.update(rng_states())
    tmp = directory / "last.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / "last.safetensors")
    doc = dict(
        info,
        optimizers=optim_meta,
        schedulers={k: s.state_dict() for k, s in (schedulers or {}).items()},
        counters=dict(counters or {}),
    )
    _atomic_json(directory / "last.json", doc)
    return directory / "last.safetensors"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """safetensors file written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    os.replace(tmp, path)


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint | None:
    """The checkpoint in ``directory``, or None when there is none."""
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
    return Checkpoint(
        model_state=model_state,
        optimizer_states=optim_states,
        info=info,
        scheduler_states=info.pop("schedulers", {}),
        counters={k: int(v) for k, v in info.pop("counters", {}).items()},
        rng={k: v for k, v in tensors.items() if k.startswith("rng.")},
    )
