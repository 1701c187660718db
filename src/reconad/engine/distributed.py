"""Data parallelism under ``torchrun`` (gloo on CPU, NCCL on CUDA).

Gradients are averaged across processes with one all-reduce per parameter after each
backward pass.  This is what ``DistributedDataParallel`` does, done explicitly so that
a model may run any number of its own optimisation steps per batch (as adversarial
models do) without the engine knowing about them.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device: torch.device) -> bool:
    """Join the process group when started by torchrun; return whether distributed."""
    if not launched_by_torchrun():
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return True


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def broadcast_parameters(module: nn.Module) -> None:
    """Start every rank from rank 0's weights and buffers."""
    if not is_distributed():
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(params: list[nn.Parameter]) -> None:
    """Average the gradients of ``params`` across ranks (one all-reduce each)."""
    if not is_distributed():
        return
    n = float(world_size())
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(n)


def average_buffers(module: nn.Module) -> None:
    """Average floating-point buffers (e.g. BatchNorm running statistics) across ranks."""
    if not is_distributed():
        return
    n = float(world_size())
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b.data, op=dist.ReduceOp.SUM)
            b.data.div_(n)


def mean_across_ranks(value: float, device: torch.device) -> float:
    if not is_distributed():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item()) / world_size()


def barrier() -> None:
    if is_distributed():
        dist.barrier()
