"""Does PyTorch work between ONNX Runtime calls slow ONNX Runtime down?

Times one ONNX export at batch 1 in four settings, in this one process, alternating:
a plain session on a ready array; the same with a PyTorch resize of a 1024-px image
(what loading an image does) before each call, with PyTorch on the machine's cores;
the same with PyTorch on one thread; and a torch tensor handed to ``OnnxDetector``.
Prints images/s, the median of ``rounds`` rounds.

    .venv/bin/python benchmarks/ort_contention.py '{"onnx": "RUN/export/model.onnx", "size": 256,
        "seconds": 3, "rounds": 5}'
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from reconad.protocols.measure import timed_rate


def _rate(fn: Any, seconds: float) -> float:
    """calls/s of the argument-free ``fn``, by the peer benchmark's timing rule."""
    return timed_rate(lambda _: fn(), [None], 1, seconds)


def main(spec: dict[str, Any]) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    from reconad.inference import OnnxDetector, machine_threads

    cores = machine_threads()
    session = OnnxDetector(spec["onnx"], threads=cores)
    size = int(spec.get("size", 256))
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    big = torch.rand(1, 3, 1024, 1024)

    def resize() -> None:
        F.interpolate(big, size=(size, size), mode="bilinear", antialias=True)

    def with_torch(threads: int) -> Any:
        def call() -> None:
            torch.set_num_threads(threads)
            resize()
            session(x)

        return call

    cases = {
        "ONNX Runtime alone": lambda: session(x),
        f"torch resize ({cores} threads) before each call": with_torch(cores),
        "torch resize (1 thread) before each call": with_torch(1),
        "torch resize alone (1 thread)": lambda: (torch.set_num_threads(1), resize()),
        "torch tensor input": lambda: session(torch.from_numpy(x)),
    }
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(int(spec.get("rounds", 5))):
        for name, fn in cases.items():
            samples[name].append(_rate(fn, float(spec.get("seconds", 3))))
    result = {k: float(np.median(v)) for k, v in samples.items()}
    for k, v in result.items():
        print(f"{k}: {v:.1f} calls/s")
    return result


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", type=json.loads, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    main(parser().parse_args().spec)
