"""What a checkpoint must agree on before ``resume=True`` continues it.

Loading a checkpoint restores the optimisers' hyperparameters and the schedules with
their states, so an option given now that differs from the checkpoint's would be
silently overridden (``--resume --lr X`` training on at the old rate while the saved
config says X).  A resumed run continues the checkpointed training as it was: a checkpoint
of another model, of other model options, or with other optimiser or schedule settings is
refused with one line naming the differences.  ``epochs`` may grow where no schedule
depends on it; ``seed`` and ``batch_size`` apply to the epochs still to run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from reconad.engine.checkpoint import Checkpoint
from reconad.errors import ConfigError, ModelFileError, ReconadError
from reconad.jsonfile import dumps

__all__ = ["check_resumable", "fitting_state", "model_options"]

#: optimiser settings a checkpoint restores (the learning rate is compared as its base value)
OPTIMIZER_KEYS = ("betas", "eps", "weight_decay", "momentum", "dampening", "nesterov", "amsgrad", "maximize")
#: schedule settings a checkpoint restores (``T_max`` / ``step_size`` follow ``epochs``)
SCHEDULER_KEYS = ("T_max", "eta_min", "step_size", "gamma", "milestones")
HINT = (
    "a resumed run continues the checkpointed training as it was: "
    "give the options it was trained with, or train afresh (--overwrite)"
)


def _plain(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples as lists), for comparing with a checkpoint."""
    return json.loads(dumps(value))


def _differences(what: str, saved: dict[str, Any], now: dict[str, Any], keys: Any) -> list[str]:
    saved, now = _plain(saved), _plain(now)
    return [
        f"{what}{k} {saved[k]!r} in the checkpoint, {now[k]!r} now"
        for k in keys
        if k in saved and k in now and saved[k] != now[k]
    ]


def _group_settings(group: dict[str, Any]) -> dict[str, Any]:
    settings = {k: group[k] for k in OPTIMIZER_KEYS if k in group}
    settings["lr"] = group.get("initial_lr", group.get("lr"))  # the base rate, before any schedule
    return settings


def _optimizer_problems(saved: dict[str, Any], optimizers: dict[str, Any]) -> list[str]:
    problems = [
        f"optimiser {n!r} is in the checkpoint, not in this model" for n in sorted(set(saved) - set(optimizers))
    ]
    for name, opt in optimizers.items():
        if name not in saved:
            problems.append(f"optimiser {name!r} is not in the checkpoint")
            continue
        old_groups, new_groups = saved[name]["param_groups"], opt.state_dict()["param_groups"]
        if len(old_groups) != len(new_groups):
            problems.append(
                f"optimiser {name!r} has {len(old_groups)} parameter groups in the checkpoint, {len(new_groups)} now"
            )
            continue
        for old, new in zip(old_groups, new_groups):
            a, b = _group_settings(old), _group_settings(new)
            if set(a) != set(b):
                problems.append(f"optimiser {name!r} is of another kind than in the checkpoint")
            else:
                problems += _differences(f"optimiser {name!r}: ", a, b, ["lr", *OPTIMIZER_KEYS])
    return problems


def _scheduler_problems(saved: dict[str, Any], schedulers: dict[str, Any]) -> list[str]:
    problems = [
        f"optimiser {n!r} has a schedule in the checkpoint, none now" for n in sorted(set(saved) - set(schedulers))
    ]
    for name, sched in schedulers.items():
        if name not in saved:
            problems.append(f"optimiser {name!r} has a schedule now, none in the checkpoint")
        elif {k for k in SCHEDULER_KEYS if k in saved[name]} != {k for k in SCHEDULER_KEYS if k in sched.state_dict()}:
            problems.append(f"optimiser {name!r} has another schedule than in the checkpoint")
        else:
            problems += _differences(f"schedule of {name!r}: ", saved[name], sched.state_dict(), SCHEDULER_KEYS)
    return problems


def model_options(model: Any) -> dict[str, Any] | None:
    """The model's options as its checkpoint records them (None for a model without a config)."""
    to_dict = getattr(getattr(model, "config", None), "to_dict", None)
    return to_dict() if callable(to_dict) else None


def check_resumable(
    ck: Checkpoint, model: Any, optimizers: dict[str, Any], schedulers: dict[str, Any], where: Path
) -> None:
    """ConfigError (one line) unless ``ck`` is a checkpoint of this model, these model options
    and these optimiser and schedule settings (see the module docstring)."""
    recorded = ck.info.get("model")
    if recorded is not None and recorded != model.name:
        raise ConfigError(f"cannot resume from {where}: it holds a checkpoint of model {recorded}, not {model.name}")
    problems = []
    saved_config, now = ck.info.get("model_config"), model_options(model)
    if isinstance(saved_config, dict) and now is not None:  # older checkpoints lack it: the tensors are checked
        problems += _differences("", saved_config, now, sorted(now))
    problems += _optimizer_problems(ck.optimizer_states, optimizers)
    problems += _scheduler_problems(ck.scheduler_states, schedulers)
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise ConfigError(f"cannot resume from {where}: {shown} ({HINT})")


@contextmanager
def fitting_state(where: Path, model_name: str) -> Iterator[None]:
    """Loading a checkpoint's tensors into the model and optimisers: a mismatch is one line."""
    try:
        yield
    except ReconadError:  # ConfigError and DataError are ValueErrors: already one line
        raise
    except (KeyError, RuntimeError, ValueError, IndexError, TypeError) as exc:
        lines = [line.strip() for line in str(exc).strip('"').splitlines() if line.strip()] or [type(exc).__name__]
        first = lines[1] if len(lines) > 1 and lines[0].startswith("Error(s) in loading") else lines[0]
        raise ModelFileError(
            f"cannot resume from {where}: the checkpoint does not fit this {model_name} ({first}); {HINT}"
        ) from None
