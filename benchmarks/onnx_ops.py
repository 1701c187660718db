"""ONNX exports side by side: images/s at batch 1 through ``OnnxDetector`` and where the
time goes, by operator (ONNX Runtime's own profile).

Alternates the files round by round in this one process, so a busy machine slows them
alike; prints the median images/s of ``rounds`` rounds per file and its operators' shares
of the profiled kernel time (``reorder`` rows are ONNX Runtime's layout conversions).

    .venv/bin/python benchmarks/onnx_ops.py before.onnx after.onnx --size 256 --rounds 7
"""

from __future__ import annotations

import argparse
import collections
import json
from pathlib import Path
from typing import Any

import numpy as np

from reconad.protocols.measure import timed_rate


def op_shares(path: str, x: np.ndarray, threads: int, calls: int = 20) -> dict[str, float]:
    """Share of the profiled kernel time per operator type, largest first."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_profiling = True
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(calls):
        session.run(None, {name: x})
    trace = Path(session.end_profiling())
    totals: collections.Counter[str] = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    whole = max(sum(totals.values()), 1)
    return {op: t / whole for op, t in totals.most_common()}


def main(files: list[str], size: int, rounds: int, seconds: float, threads: int | None) -> dict[str, Any]:
    from reconad.inference import OnnxDetector, machine_threads

    threads = threads or machine_threads()
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    sessions = {f: OnnxDetector(f, threads=threads) for f in files}
    samples: dict[str, list[float]] = {f: [] for f in files}
    for _ in range(rounds):
        for f, session in sessions.items():
            samples[f].append(timed_rate(lambda _, s=session: s(x), [None], 1, seconds))
    out: dict[str, Any] = {}
    for f in files:
        shares = op_shares(f, x, threads)
        out[f] = {"images_per_second": float(np.median(samples[f])), "op_shares": shares}
        top = ", ".join(f"{op} {100 * v:.1f} %" for op, v in list(shares.items())[:6])
        print(f"{f}: {out[f]['images_per_second']:.1f} images/s (median of {rounds}); {top}")
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("files", nargs="+", help="ONNX files written by `reconad export`")
    ap.add_argument("--size", type=int, default=256, help="input side in pixels (the export's)")
    ap.add_argument("--rounds", type=int, default=7, help="rounds of timing, files alternating")
    ap.add_argument("--seconds", type=float, default=3.0, help="seconds of timing per file per round")
    ap.add_argument("--threads", type=int, default=None, help="intra-op threads (default: the machine's)")
    return ap


if __name__ == "__main__":
    a = parser().parse_args()
    main(a.files, a.size, a.rounds, a.seconds, a.threads)
