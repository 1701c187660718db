"""Mixed precision for training: bfloat16 autocast where the hardware runs it natively.

bfloat16 on a CPU without native support (no AVX-512 BF16 / AMX) is emulated by oneDNN
and runs many times slower than float32 (a 3×3 convolution measured 24× slower on an
AVX2 CPU), so a request for it there falls back to float32 with a warning instead of
silently making training slower.  ``auto`` picks bfloat16 only where it is native.
The default stays ``float32``: the accuracy of bfloat16 training has not been measured
on every model, and a result should not depend on which CPU trained it unless asked.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch

from reconad.engine.config import PRECISIONS

__all__ = ["PRECISIONS", "autocast", "bf16_native", "resolve_precision"]

log = logging.getLogger("reconad")


def bf16_native(device: torch.device) -> bool:
    """True where bfloat16 matrix products run natively on ``device``."""
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


def resolve_precision(requested: str, device: torch.device) -> str:
    """The precision training will use: ``float32`` or ``bfloat16``."""
    if requested == "float32":
        return "float32"
    native = bf16_native(device)
    if requested == "bfloat16" and not native:
        log.warning(
            "precision=bfloat16: this %s has no native bfloat16 (it would be emulated, many "
            "times slower); training in float32",
            device.type.upper(),
        )
    return "bfloat16" if native else "float32"


@contextlib.contextmanager
def autocast(precision: str, device: torch.device) -> Iterator[None]:
    """bfloat16 autocast for ``precision == "bfloat16"``; nothing otherwise."""
    if precision != "bfloat16":
        yield
        return
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        yield
