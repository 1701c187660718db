"""ESAD without labels on Fashion-MNIST classes, each trained model scored eight ways.

Usage (from the project root, in the project's venv):

    python benchmarks/esad_scores.py '{"classes": [0, 2], "per_class": 800, "opts": {}}'

Trains ``esad`` (28 px, seed 0, the one-class benchmark's defaults plus ``opts``) on
``per_class`` training images of each normal class (seeded draw; null = all), then
prints the test-set AUROC of the paper's score ||x - x_hat||^2 / n + ||z_hat - c||^2
and of its parts (reconstruction error, ||z_hat - c||^2), of ||z||^2 and of the
consistency ||z - z_hat||^2, and of sums of terms each divided by its mean over the
training images ("bal:": the paper's two, all three as ``score="balanced"``, or
reconstruction and consistency as ``score="recon+consistency"``), with the
mean ||z_hat - c||^2 over normal and anomalous test images: it shows which term
carries the signal and whether the codes collapse.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from reconad.data.class_datasets import load_one_class_set
from reconad.detector import Detector
from reconad.metrics import image_auroc


def score_parts(det: Detector, images: np.ndarray) -> dict[str, np.ndarray]:
    """Each score term on ``images``, read off the model as the Detector feeds it."""
    model, parts = det.model_, {}
    plain = model.score

    def record(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            terms, _ = model.score_terms(batch)  # the terms the model's own scores combine
            rows = {
                "recon": terms[:, 0],
                "||z_hat-c||^2": terms[:, 1],
                "||z||^2": model.encoder(batch).pow(2).sum(1),
                "||z-z_hat||^2": terms[:, 2],
            }
        rows["paper"] = rows["recon"] + rows["||z_hat-c||^2"]
        for k, v in rows.items():
            parts.setdefault(k, []).append(v.numpy())
        return plain(batch)

    model.score = record
    try:
        det.decision_function(images)
    finally:
        model.score = plain
    return {k: np.concatenate(v) for k, v in parts.items()}


def run_class(data, normal_class: int, per_class: int | None, opts: dict) -> dict[str, float]:
    x = data.train_x[data.train_y == normal_class]
    if per_class:
        x = x[np.sort(np.random.default_rng(0).permutation(len(x))[:per_class])]
    y = (data.test_y != normal_class).astype(int)
    t0 = time.time()
    det = Detector("esad", image_size=28, seed=0, progress=False, **opts).fit(x)
    out = {"seconds": round(time.time() - t0, 1)}
    train = score_parts(det, x)
    test = score_parts(det, data.test_x)

    def balanced(*keys: str) -> np.ndarray:
        return sum(test[k] / train[k].mean() for k in keys)

    test["bal:recon+latent"] = balanced("recon", "||z_hat-c||^2")
    test["bal:all three"] = balanced("recon", "||z_hat-c||^2", "||z-z_hat||^2")  # score="balanced"
    test["bal:recon+con"] = balanced("recon", "||z-z_hat||^2")  # score="recon+consistency"
    for k, v in test.items():
        out[k] = round(image_auroc(y, v), 4)
        if k == "||z_hat-c||^2":
            out["mean normal"] = float(v[y == 0].mean())
            out["mean anomalous"] = float(v[y == 1].mean())
    return out


def main(spec: dict) -> None:
    torch.set_num_threads(1)
    data = load_one_class_set("fashion-mnist", spec.get("root"))
    rows = {}
    for c in spec.get("classes", [0]):
        rows[c] = run_class(data, c, spec.get("per_class", 800), spec.get("opts", {}))
        print(c, json.dumps(rows[c]), flush=True)
    keys = [
        "paper",
        "bal:recon+latent",
        "bal:all three",
        "bal:recon+con",
        "recon",
        "||z_hat-c||^2",
        "||z||^2",
        "||z-z_hat||^2",
    ]
    print("mean", {k: round(float(np.mean([r[k] for r in rows.values()])), 4) for k in keys})


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", nargs="?", type=json.loads, default={}, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    main(parser().parse_args().spec)
