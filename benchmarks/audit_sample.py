"""The audit sample on the line: does recalibrating from reviewed audit normals bring a
small-n run's false-alarm rate back to its target, through the real server?

A default HFR is trained on ``n_train`` magnetic-tile Free images (seeded draw) with the
target ``fpr``; its own calibration rests on the few images the Detector holds out.  A real
``reconad serve`` app (uvicorn on 127.0.0.1, in this process) then scores a "line": the next
``n_line`` Free images mixed with every defect image, shuffled, with ``--audit-share
share``; every audited result is reviewed with its true label (``POST .../review``), then
``POST .../recalibrate``.  The remaining Free images, never seen before, are scored last: the
share flagged is the realised false-alarm rate, under the run's own threshold and under the
recalibrated one.  Prints one JSON object (also written to ``out/audit_sample.json``).

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/audit_sample.py '{"out": "runs/bench-audit"}'
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

DEFAULTS: dict[str, Any] = {
    "root": "../shared/data/magnetic-tile",
    "n_train": 60,
    "n_line": 600,
    "n_defects": None,  # None: every defect image
    "n_fresh": None,  # None: every Free image left
    "image_size": 128,
    "epochs": 10,
    "fpr": 0.05,
    "share": 0.1,
    "seed": 0,
    "out": "runs/bench-audit",
}


def _split(root: Path, cfg: dict[str, Any]) -> tuple[list[Path], list[Path], list[Path], list[Path]]:
    free = sorted((root / "MT_Free" / "Imgs").glob("*.jpg"))
    defects = sorted(p for d in sorted(root.glob("MT_*")) if d.name != "MT_Free" for p in (d / "Imgs").glob("*.jpg"))
    order = np.random.default_rng(cfg["seed"]).permutation(len(free))
    free = [free[i] for i in order]
    n, m = cfg["n_train"], cfg["n_line"]
    fresh = free[n + m :][: cfg["n_fresh"]]
    return free[:n], free[n : n + m], fresh, defects[: cfg["n_defects"]]


def _post(client: Any, paths: list[Path]) -> list[dict]:
    out = []
    for i in range(0, len(paths), 8):
        files = [("images", (p.name, p.read_bytes())) for p in paths[i : i + 8]]
        r = client.post("/v1/models/mt/score", files=files)
        r.raise_for_status()
        out += r.json()["results"]
    return out


def _review_audited(client: Any, results: list[dict], truth: dict[str, str]) -> int:
    n = 0
    for r in results:
        if r["audit"]:
            client.post(f"/v1/results/{r['id']}/review", json={"label": truth[r["image_name"]]}).raise_for_status()
            n += 1
    return n


def _conformal_band(n: int, fpr: float) -> list[float]:
    """90 % band of the true false-alarm rate of the split-conformal threshold from n normals:
    Beta(k, n + 1 - k), k = floor(fpr (n + 1))."""
    from scipy.stats import beta

    k = max(1, math.floor(fpr * (n + 1) + 1e-9))
    return [float(beta.ppf(0.05, k, n + 1 - k)), float(beta.ppf(0.95, k, n + 1 - k))]


def main(cfg: dict[str, Any]) -> dict[str, Any]:
    import httpx
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from helpers.serve import server_thread
    from reconad import Detector
    from reconad.serve.app import create_app
    from reconad.serve.config import ServeConfig, ServedRun
    from reconad.serve.recalibration import false_alarm_band

    torch.set_num_threads(1)
    out = Path(cfg["out"])
    out.mkdir(parents=True, exist_ok=True)
    train, line_normal, fresh, defects = _split(Path(cfg["root"]), cfg)
    t0 = time.perf_counter()
    det = Detector("hfr", image_size=cfg["image_size"], epochs=cfg["epochs"], fpr=cfg["fpr"], seed=cfg["seed"])
    det.fit([str(p) for p in train])
    det.save(out / "run" / "model")
    train_s = time.perf_counter() - t0
    truth = {p.name: "normal" for p in line_normal + fresh} | {p.name: "defect" for p in defects}
    line = [*line_normal, *defects]
    line = [line[i] for i in np.random.default_rng(cfg["seed"] + 1).permutation(len(line))]
    config = ServeConfig(
        runs=[ServedRun("mt", str(out / "run"))],
        db=f"sqlite:///{out / 'results.db'}",
        engine="torch",
        threads=1,
        max_images=8,
        audit_share=cfg["share"],
        audit_seed=cfg["seed"],
        defects_dir=str(out / "defects"),
    )
    with server_thread(create_app(config)) as url, httpx.Client(base_url=url, timeout=120) as client:
        on_line = _post(client, line)
        reviewed = _review_audited(client, on_line, truth)
        before = client.get("/v1/models/mt/false-alarm-rate").json()
        version = client.post("/v1/models/mt/recalibrate", json={"fpr": cfg["fpr"]}).json()
        on_fresh = _post(client, fresh)
        _review_audited(client, on_fresh, truth)
        after = client.get("/v1/models/mt/false-alarm-rate").json()
        counts = client.get("/v1/models/mt/audit").json()["counts"]
    thr0 = before["threshold"]
    line_normals = [r for r in on_line if truth[r["image_name"]] == "normal"]
    fresh_scores = np.array([r["score"] for r in on_fresh])
    own_rate = float(np.mean(fresh_scores > thr0))
    new_rate = float(np.mean([r["verdict"] == "anomalous" for r in on_fresh]))
    band = false_alarm_band(round(new_rate * len(fresh)), len(fresh))
    return {
        "config": cfg,
        "train_s": round(train_s, 1),
        "n_line": len(line),
        "line_defects": len(defects),
        "audited_on_line": reviewed,
        "audit_counts": counts,
        "own": {
            "threshold": thr0,
            "calibration": det.calibration_.describe(),
            "line_normals_flagged": float(np.mean([r["verdict"] == "anomalous" for r in line_normals])),
            "service_estimate": before,
            "fresh_normals_flagged": own_rate,
        },
        "recalibrated": {
            "version": version,
            "conformal_band_90": _conformal_band(version["n_normal"], cfg["fpr"]),
            "fresh_normals": len(fresh),
            "fresh_normals_flagged": new_rate,
            "fresh_measured_band_90": [band.low, band.high],
            "service_estimate": after,
            "line_defects_flagged_at_new_threshold": float(
                np.mean([r["score"] > version["threshold"] for r in on_line if truth[r["image_name"]] == "defect"])
            ),
            "line_defects_flagged_at_own_threshold": float(
                np.mean([r["verdict"] == "anomalous" for r in on_line if truth[r["image_name"]] == "defect"])
            ),
        },
    }


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", nargs="?", type=json.loads, default={}, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    cfg = {**DEFAULTS, **parser().parse_args().spec}
    result = main(cfg)
    text = json.dumps(result, indent=2, default=str)
    Path(cfg["out"], "audit_sample.json").write_text(text)
    print(text)
