"""One float ONNX export under engine settings side by side: images/s per setting.

The settings alternate round by round in this one process, so a busy machine slows them
alike; each row is the median over ``rounds`` of images/s (batch rows: images, not calls).

    .venv/bin/python benchmarks/engine_settings.py runs/x/export/model.onnx --rounds 5

Rows: ``ort`` (reconad's ``OnnxDetector`` settings: all graph optimisations, the
machine's threads, one inter-op thread), ``ort-nospin`` (pool threads sleep between
operators instead of spinning), ``ort-noarena`` (no CPU memory arena), ``ort-extended``
(optimisation level EXTENDED: no NCHWc blocked layout), ``ort-b4/8/16`` (batches), and,
where OpenVINO is installed, ``ov`` (f32, latency hint), ``ov-b8`` and ``ov-tput-b8``
(throughput hint).  Float only: a reduced precision is no row of this table.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reconad.protocols.measure import timed_rate

Scorer = Callable[[np.ndarray], Any]


def _ort(path: str, threads: int, level: str = "ALL", spin: bool = True, arena: bool = True) -> Scorer:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level}")
    opts.enable_cpu_mem_arena = arena
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})


def _openvino(path: str, threads: int, hint: str, batch: int, size: int) -> Scorer | None:
    try:
        import openvino as ov
    except ImportError:
        return None
    core = ov.Core()
    model = core.read_model(path)
    model.reshape({model.inputs[0].get_any_name(): [batch, 3, size, size]})
    config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": hint}
    compiled = core.compile_model(model, "CPU", config)
    request = compiled.create_infer_request()
    return lambda x: request.infer({0: x})


def settings(path: str, threads: int, size: int) -> dict[str, tuple[Scorer, int]]:
    """label -> (scorer, batch)."""
    rows: dict[str, tuple[Scorer, int]] = {
        "ort": (_ort(path, threads), 1),
        "ort-nospin": (_ort(path, threads, spin=False), 1),
        "ort-noarena": (_ort(path, threads, arena=False), 1),
        "ort-extended": (_ort(path, threads, level="EXTENDED"), 1),
    }
    base = rows["ort"][0]
    for batch in (4, 8, 16):
        rows[f"ort-b{batch}"] = (base, batch)
    for label, hint, batch in (("ov", "LATENCY", 1), ("ov-b8", "LATENCY", 8), ("ov-tput-b8", "THROUGHPUT", 8)):
        scorer = _openvino(path, threads, hint, batch, size)
        if scorer is not None:
            rows[label] = (scorer, batch)
    return rows


def main(path: str, size: int, rounds: int, seconds: float, threads: int | None, out: str | None) -> dict[str, Any]:
    from reconad.inference import machine_threads

    threads = threads or machine_threads()
    x = np.random.default_rng(0).random((16, 3, size, size), dtype=np.float32)
    rows = settings(path, threads, size)
    samples: dict[str, list[float]] = {label: [] for label in rows}
    for _ in range(rounds):
        for label, (scorer, batch) in rows.items():
            samples[label].append(timed_rate(scorer, x, batch, seconds))
    result = {
        label: {"batch": rows[label][1], "images_per_second": float(np.median(v)), "rounds": v}
        for label, v in samples.items()
    }
    for label, r in result.items():
        print(f"{label:14s} batch {r['batch']:2d}: {r['images_per_second']:.1f} images/s (median of {rounds})")
    if out:
        Path(out).write_text(json.dumps({"file": path, "threads": threads, "rows": result}, indent=1))
    return result


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("file", help="a float ONNX file written by `reconad export`")
    ap.add_argument("--size", type=int, default=256, help="input side in pixels (the export's)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of timing, settings alternating")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds of timing per setting per round")
    ap.add_argument("--threads", type=int, default=None, help="threads (default: the machine's)")
    ap.add_argument("--out", default=None, help="write the rows as JSON here")
    return ap


if __name__ == "__main__":
    a = parser().parse_args()
    main(a.file, a.size, a.rounds, a.seconds, a.threads, a.out)
