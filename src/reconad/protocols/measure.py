"""Measuring helpers the speed protocols share: memory, FLOP rates, images per second."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["forward_gflops", "matmul_gflops", "peak_rss_mib", "rate", "timed_rate", "vm_hwm_mib"]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def vm_hwm_mib() -> float:
    """Peak RSS of this process's own memory map (``VmHWM``).  Unlike ``ru_maxrss`` it
    is not inherited from the parent that forked this process."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mib()


def matmul_gflops(n: int = 1024, seconds: float = 1.0) -> float:
    """This machine's float32 matrix-multiply rate (GFLOP/s) with the current torch threads.

    Best of repeated ``n x n`` products over about ``seconds``: the practical limit a
    convolutional network's FLOPs can run at here.
    """
    a, b = torch.rand(n, n), torch.rand(n, n)
    torch.mm(a, b)
    best, t_end = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2.0 * n**3 / best / 1e9


def forward_gflops(fn: Callable[[torch.Tensor], Any], image_size: int) -> float:
    """Convolution / matmul FLOPs (2 x multiply-adds) of one image through ``fn``, in GFLOP."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn(torch.rand(1, 3, image_size, image_size))
    return counter.get_total_flops() / 1e9


def rate(fn: Callable[[torch.Tensor], Any], images: torch.Tensor, batch: int, n_images: int, rounds: int) -> float:
    """Median images/s over ``rounds`` rounds of ``n_images`` images in batches of ``batch``."""
    x = images[:batch]
    fn(x)  # warm-up
    rates = []
    for _ in range(rounds):
        reps = max(1, n_images // batch)
        t = time.perf_counter()
        for _ in range(reps):
            fn(x)
        rates.append(reps * batch / (time.perf_counter() - t))
    return float(np.median(rates))


def timed_rate(fn: Callable[[Any], Any], x: Any, batch: int, seconds: float) -> float:
    """images/s of ``fn`` on batches of ``batch`` of ``x``, after a warm-up call, over about
    ``seconds`` (at least one call): the rule of the peer comparison (``benchmarks/peer_anomalib.py``
    and its worker in the peer environment, which imports this module alone: numpy and torch)."""
    fn(x[:batch])
    calls, t0 = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - t0 < seconds:
        fn(x[:batch])
        calls += 1
    return calls * batch / (time.perf_counter() - t0)
