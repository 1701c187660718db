"""The reliability sweep as a table: cases per command and GOOD / POOR / BAD counts.

Usage (from the project root, in the project's venv):

    python benchmarks/reliability_sweep.py '{"src": "src", "out": "runs/sweep-after"}'
    python benchmarks/reliability_sweep.py '{"src": "OLD/src", "out": "runs/sweep-before"}'

runs ``tests/test_reliability_sweep.py`` (and, with ``"serve": true``, the server's sweep
``tests/test_reliability_sweep_serve.py``) through pytest with ``PYTHONPATH=SRC``, so the same
cases measure an older tree (``git archive COMMIT src``) as the baseline.  A passing case is
GOOD (a refusal in one clear line naming the input) or OK (valid input that works); a failing
case's message says BAD (a traceback, a bad input accepted, a wrong result, a run changed) or
POOR (refused, but not in one line naming the input), as the sweep's checks classify it.  A
case whose own setup fails on the older tree (it prepares with a newer feature) is counted
apart, as SETUP.  Writes ``OUT/sweep.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

SWEEPS = {"data": "tests/test_reliability_sweep.py", "serve": "tests/test_reliability_sweep_serve.py"}
COMMANDS = ("train", "test", "report", "predict", "watch", "export", "benchmark", "serve", "weights", "python")
OK_PREFIX = re.compile(r"-ok$|^(predict-garbage-png-listed|train-overwrite-keeps-results-db|predict-thin-and-one-pixel-tiled"
                       r"|export-int8-autoencoder|benchmark-hyperspectral-2x2-scene"
                       r"|benchmark-hyperspectral-no-anomalous-pixel|weights-list-empty-cache)$")  # fmt: skip


def _command(case_id: str, sweep: str) -> str:
    if sweep == "serve":
        return "serve (HTTP)"
    first = case_id.split("-")[0]
    return "python" if first == "api" else first


def _outcome(case: ET.Element) -> tuple[str, str]:
    """(class, first line of the reason) of one junit test case."""
    for tag in ("failure", "error"):
        node = case.find(tag)
        if node is None:
            continue
        message = node.get("message") or ""  # the exception's own text, not the source around it
        text = message + "\n" + "\n".join(x for x in (node.text or "").splitlines() if x.startswith("E "))
        if tag == "error":  # raised in a fixture, before the case ran
            return "SETUP", text.strip().splitlines()[0][:200]
        for label in ("SETUP", "BAD", "POOR"):
            if f"[{label}]" in text:
                line = next(x for x in text.splitlines() if f"[{label}]" in x)
                return label, line.strip()[:300]
        return "BAD", text.strip().splitlines()[0][:300]  # a check outside the classified ones
    if case.find("skipped") is not None:
        return "SKIPPED", ""
    return "GOOD", ""


def run(src: str, out: str, serve: bool = False, reparse: bool = False) -> dict[str, Any]:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "OMP_NUM_THREADS": "1"}
    rows: list[dict[str, Any]] = []
    seconds: dict[str, float] = {}
    for name, path in SWEEPS.items():
        if name == "serve" and not serve:
            continue
        xml = out_dir / f"{name}.xml"
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", "-p", "no:cacheprovider", path, "-k", "sweep"]
        if not (reparse and xml.exists()):  # reparse: classify an earlier run's results again
            subprocess.run([*cmd, f"--junitxml={xml}"], env=env, capture_output=True, text=True)
        seconds[name] = time.perf_counter() - t0
        for case in ET.parse(xml).getroot().iter("testcase"):
            m = re.search(r"\[(.*)\]$", case.get("name", ""))
            if m is None:
                continue  # not a table case (the sweep's own checks)
            label, why = _outcome(case)
            case_id = m.group(1)
            if label == "GOOD" and name == "data" and OK_PREFIX.search(case_id):
                label = "OK"
            rows.append({"sweep": name, "id": case_id, "command": _command(case_id, name), "class": label, "why": why})
    result = {"src": src, "seconds": seconds, "cases": rows}
    (out_dir / "sweep.json").write_text(json.dumps(result, indent=1))
    return result


def table(result: dict[str, Any]) -> str:
    by: dict[str, Counter] = defaultdict(Counter)
    for r in result["cases"]:
        by[r["command"]][r["class"]] += 1
        by["total"][r["class"]] += 1
    classes = ["GOOD", "OK", "POOR", "BAD", "SETUP"]
    lines = ["| command | cases | " + " | ".join(classes) + " |", "|---|" + "---|" * (len(classes) + 1)]
    order = [c for c in (*COMMANDS, "serve (HTTP)") if c in by] + ["total"]
    for c in order:
        counts = by[c]
        lines.append(f"| {c} | {sum(counts.values())} | " + " | ".join(str(counts[k]) for k in classes) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", nargs="?", type=json.loads, default={}, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    options = parser().parse_args().spec
    res = run(
        options.get("src", "src"),
        options.get("out", "runs/sweep"),
        bool(options.get("serve", False)),
        bool(options.get("reparse", False)),
    )
    print(table(res))
    for r in res["cases"]:
        if r["class"] in ("BAD", "POOR", "SETUP"):
            print(f"{r['class']:5} {r['id']}: {r['why']}")
    print("seconds:", {k: round(v, 1) for k, v in res["seconds"].items()})
