"""Per-epoch checkpoints as safetensors + JSON (never pickle).

``last.safetensors`` holds the model's trainable tensors (``model.*``), every
optimiser's state tensors (``optim.<name>.<param>.<key>``) and the random-number
generator states (``rng.*``); ``last.json`` holds the rest: epoch, global step, the
model's step counters, the schedulers' states, the optimisers' param groups and the
training history.  Both are written to a temporary file and renamed, so a kill leaves
the previous checkpoint or the new one, never a torn file.  The two files are not renamed
at one instant, so the safetensors file also carries the JSON document in its header
(``reconad_checkpoint``) and is the one that counts: a kill between the two renames leaves
a newer tensor file beside an older ``last.json``, and the checkpoint read back is still
the newer one, whole.  A checkpoint that cannot be read is a ``ModelFileError``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from reconad.atomic import atomic_path
from reconad.errors import ModelFileError
from reconad.jsonfile import dumps, write_json

#: the safetensors header key holding the checkpoint's JSON document
META_KEY = "reconad_checkpoint"


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
    write_json(path, doc, indent=1)  # strict JSON: an infinite best_val is written as null


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
    doc = dict(
        info,
        optimizers=optim_meta,
        schedulers={k: s.state_dict() for k, s in (schedulers or {}).items()},
        counters=dict(counters or {}),
    )
    # The tensor file is the commit point: it carries the document too (see the module docstring).
    save_tensors(directory / "last.safetensors", tensors, metadata={META_KEY: dumps(doc)})
    _atomic_json(directory / "last.json", doc)
    return directory / "last.safetensors"


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """safetensors file written atomically."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors; ModelFileError (one line) for a file that is not one."""
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"{path} is not a readable checkpoint ({exc}): delete it or train afresh (--overwrite)"
        ) from None


def _document(st: Path, js: Path) -> dict[str, Any]:
    """The checkpoint's JSON document: from the tensor file's header, or (older checkpoints) ``last.json``."""
    try:
        with safe_open(str(st), framework="pt") as fh:
            text = (fh.metadata() or {}).get(META_KEY)
        if text is None:
            text, st = js.read_text(), js
        doc = json.loads(text)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"{st} is not a readable checkpoint ({exc}): delete it or train afresh (--overwrite)"
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("epoch"), int):
        raise ModelFileError(
            f"{st} is not a reconad checkpoint (no epoch recorded): delete it or train afresh (--overwrite)"
        )
    return doc


def load_checkpoint(directory: str | os.PathLike) -> Checkpoint | None:
    """The checkpoint in ``directory``, or None when there is none."""
    directory = Path(directory)
    st, js = directory / "last.safetensors", directory / "last.json"
    if not st.exists():
        return None
    info = _document(st, js)
    tensors = load_tensors(st)
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        optim_states = {
            name: _unflatten_optimizer(name, tensors, meta) for name, meta in info.pop("optimizers", {}).items()
        }
        return Checkpoint(
            model_state=model_state,
            optimizer_states=optim_states,
            info=info,
            scheduler_states=dict(info.pop("schedulers", {})),
            counters={k: int(v) for k, v in info.pop("counters", {}).items()},
            rng={k: v for k, v in tensors.items() if k.startswith("rng.")},
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(
            f"{st}: the checkpoint is incomplete or malformed ({exc!r}): delete it or train afresh (--overwrite)"
        ) from None
