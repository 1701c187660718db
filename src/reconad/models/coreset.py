"""Greedy coreset subsampling of a memory bank (k-center greedy, as in PatchCore).

Starting from one seeded random point, each step adds the point farthest from the
points chosen so far, so the coreset covers the bank's feature space with the smallest
worst-case gap.  Distances are computed after a random Gaussian projection to a few
dimensions (Johnson-Lindenstrauss), as in the paper.

Cost: every step reads every candidate once, so one greedy pass is O(candidates x size).
Deviation from the paper, to keep that bounded on a CPU whatever the training set:
when the bank holds more than ``pool_factor x size`` points, the search runs in two
stages.  The bank is cut into chunks of ``chunk`` points in their original order
(neighbouring patches of the same images), each chunk gives its own greedy coreset of
its share of a ``pool_factor x size`` pool, and the final greedy pass runs on that pool.
Greedy coresets compose (the union of local k-center coresets, reduced again, keeps
the covering property up to a constant factor), so rare patches survive the first
stage, which a uniform random pool loses (measured: BENCHMARKS.md, PatchCore).
Total cost O((chunk + size) x pool_factor x size x dim), independent of the bank size.
"""

from __future__ import annotations

import math

import torch

__all__ = ["greedy_coreset"]


def _greedy(x: torch.Tensor, size: int, first: int) -> torch.Tensor:
    """Indices of a greedy k-center coreset of ``size`` rows of ``x`` (N, d), from row ``first``."""
    xt = x.t().contiguous()  # a row vector times (D, N) runs about twice as fast as (N, D) times a vector
    chosen = torch.empty(size, dtype=torch.long)
    chosen[0] = first
    sq = (x * x).sum(1)
    gap = torch.full((len(x),), float("inf"))
    for i in range(size):
        j = int(chosen[i])
        # squared distance of every candidate to the newest centre: |x|^2 - 2 x.c + |c|^2
        d = (sq - 2.0 * (x[j] @ xt) + sq[j]).clamp_min_(0)
        torch.minimum(gap, d, out=gap)
        if i + 1 < size:
            chosen[i + 1] = int(torch.argmax(gap))
    return chosen


@torch.no_grad()
def greedy_coreset(
    features: torch.Tensor,
    size: int,
    projection_dim: int = 128,
    pool_factor: int = 4,
    seed: int = 0,
    chunk: int = 8192,
) -> torch.Tensor:
    """Indices (into ``features``, (N, D)) of a greedy k-center coreset of ``size`` points."""
    n = int(features.shape[0])
    if size >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    x = features.float()
    if projection_dim < x.shape[1]:
        x = x @ (torch.randn(x.shape[1], projection_dim, generator=gen) / projection_dim**0.5)
    pool = torch.arange(n)
    target = pool_factor * size
    if n > target:  # stage 1: local greedy coresets of each chunk, its share of the pool
        parts = []
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            share = max(1, math.ceil(target * (stop - start) / n))
            first = int(torch.randint(stop - start, (1,), generator=gen))
            parts.append(start + _greedy(x[start:stop], min(share, stop - start), first))
        pool = torch.cat(parts)
    first = int(torch.randint(len(pool), (1,), generator=gen))
    return pool[_greedy(x.index_select(0, pool), size, first)]
