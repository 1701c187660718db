"""Side by side with anomalib: our HFR against Reverse Distillation, PaDiM, PatchCore and
EfficientAD at the same image size, batch sizes and threads, in PyTorch and in the same
ONNX Runtime settings, alternating in one sitting.

Usage (from the project root; ``make peer-venv`` first, which installs anomalib with its
own torch and torchvision in ``.peer-venv``; a trained run of ours at that size):

    .venv/bin/python benchmarks/peer_anomalib.py '{"run": "runs/serve-grass", "size": 256,
        "batches": [1, 16], "threads": 2, "seconds": 4, "rounds": 5, "out": "runs/peer-anomalib"}'

Each measurement is a fresh process: ours (this environment: PyTorch, ONNX Runtime float
and, where the run has one, int8) and each anomalib model (``peer_worker_anomalib.py`` in
the peer environment, random weights: the speed of a forward pass does not depend on
them).  A round measures every (model, engine) once; the figures are the medians over
the rounds.  All engines time pre-processed arrays (the engine alone).  Writes
``results.json`` and ``results.md`` (the ratio table) into ``out``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from reconad.protocols.measure import timed_rate  # the worker in the peer environment times by the same rule

PEERS = ("reverse_distillation", "padim", "patchcore", "efficient_ad")
PEER_PYTHON = ".peer-venv/bin/python"
WORKER = str(Path(__file__).with_name("peer_worker_anomalib.py"))
SRC = str(Path(__file__).resolve().parents[1] / "src")


def ours(spec: dict[str, Any]) -> dict[str, Any]:
    """Time our run on one engine (runs in a fresh process: ``--ours SPEC``)."""
    import torch

    torch.set_num_threads(int(spec["threads"]))
    from reconad.inference import INT8_FILE, open_run

    threads = int(spec["threads"])
    if spec["engine"] == "onnx-int8":  # timed whether or not its accuracy check offers it
        pipe = open_run(spec["run"], "onnx", threads=threads)
        pipe = pipe.with_engine_file("onnx-int8", Path(spec["run"]) / INT8_FILE, threads)
    else:
        pipe = open_run(spec["run"], spec["engine"], threads=threads)
    used, score = pipe.engine, pipe.scorer
    batches = [int(b) for b in spec["batches"]]
    size = int(spec["size"])
    x = torch.rand(max(batches), 3, size, size, generator=torch.Generator().manual_seed(0))
    rates = {str(b): timed_rate(score, x, b, float(spec["seconds"])) for b in batches}
    return {"model": "reconad_hfr", "engine": used, "images_per_second": rates}


def _measure(cmd: list[str]) -> dict[str, Any]:
    # the peer worker imports reconad.protocols.measure alone (numpy, torch) from this tree's src/
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _jobs(spec: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(model, engine asked for, command) of one round: ours first, then each peer."""
    common = {k: spec[k] for k in ("size", "batches", "threads", "seconds")}
    jobs = []
    engines = ["torch", "onnx"] + (["onnx-int8"] if (Path(spec["run"]) / "export" / "model.int8.onnx").exists() else [])
    for engine in engines:
        arg = json.dumps({**common, "run": spec["run"], "engine": engine})
        jobs.append(("reconad_hfr", engine, [sys.executable, __file__, "--ours", arg]))
    for model in spec.get("models", PEERS):
        for engine in ("torch", "onnx"):
            arg = json.dumps({**common, "model": model, "engine": engine, "work": str(Path(spec["out"]) / "onnx")})
            jobs.append((model, engine, [spec.get("peer_python", PEER_PYTHON), WORKER, arg]))
    return jobs


def _ratios(median: dict[tuple[str, str, str], float], default: str) -> list[dict[str, Any]]:
    rows = []
    for batch in sorted({k[2] for k in median}, key=int):

        def get(model: str, engine: str, batch: str = batch) -> float:
            return median.get((model, engine, batch), float("nan"))

        ours_default, ours_torch = get("reconad_hfr", default), get("reconad_hfr", "torch")
        rows.append(
            {
                "batch": batch,
                f"ours {default} / RD onnx": ours_default / get("reverse_distillation", "onnx"),
                f"ours {default} / PaDiM onnx": ours_default / get("padim", "onnx"),
                f"ours {default} / PatchCore onnx": ours_default / get("patchcore", "onnx"),
                f"ours {default} / EfficientAD onnx": ours_default / get("efficient_ad", "onnx"),
                "ours torch / RD torch": ours_torch / get("reverse_distillation", "torch"),
            }
        )
    return rows


def main(spec: dict[str, Any]) -> dict[str, Any]:
    out = Path(spec.get("out", "runs/peer-anomalib"))
    out.mkdir(parents=True, exist_ok=True)
    spec = {"batches": [1, 16], "threads": 2, "seconds": 4.0, "rounds": 5, "size": 256, **spec, "out": str(out)}
    samples: dict[tuple[str, str, str], list[float]] = {}
    for r in range(int(spec["rounds"])):
        for model, _, cmd in _jobs(spec):
            result = _measure(cmd)
            for batch, value in result["images_per_second"].items():
                samples.setdefault((model, result["engine"], batch), []).append(float(value))
            print(f"round {r + 1}: {model} {result['engine']} {result['images_per_second']}", flush=True)
    median = {k: float(np.median(v)) for k, v in samples.items()}
    default = "onnx-int8" if _int8_offered(Path(spec["run"])) else "onnx"
    rows = [
        {"model": m, "engine": e, "batch": b, "images/s (median)": v, "runs": len(samples[(m, e, b)])}
        for (m, e, b), v in sorted(median.items())
    ]
    doc = {"spec": spec, "date": time.strftime("%Y-%m-%d %H:%M"), "rates": rows, "ratios": _ratios(median, default)}
    (out / "results.json").write_text(json.dumps(doc, indent=2))
    (out / "results.md").write_text(_markdown(doc))
    print(_markdown(doc))
    return doc


def _int8_offered(run: Path) -> bool:
    """Whether the engine would run the run's int8 export (it exists, matches the model and
    passed its accuracy check): our default engine is then int8."""
    from reconad.errors import ReconadError
    from reconad.inference import int8_export
    from reconad.serialization import recorded_sha256

    try:
        int8_export(run, recorded_sha256(run / "model") or "")
    except ReconadError:
        return False
    return True


def _markdown(doc: dict[str, Any]) -> str:
    def table(rows: list[dict[str, Any]]) -> str:
        keys = list(rows[0])
        fmt = [" | ".join(f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k]) for k in keys) for r in rows]
        return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys), *[f"| {f} |" for f in fmt]])

    return f"# Peer speed, {doc['date']}\n\n{table(doc['rates'])}\n\n{table(doc['ratios'])}\n"


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", nargs="?", type=json.loads, default={}, help="settings, a JSON object (see the docstring)")
    ap.add_argument("--ours", type=json.loads, metavar="SPEC", help="time our run on one engine (a fresh process)")
    return ap


if __name__ == "__main__":
    args = parser().parse_args()
    if args.ours is not None:
        print(json.dumps(ours(args.ours)))
    else:
        main(args.spec)
