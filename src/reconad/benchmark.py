"""Benchmark protocols.  ``localization``: train + test one model per category."""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.runs import DataSpec, format_table, test_run, train_run

KEYS = ["category", "image_auroc", "pixel_auroc", "pro", "image_f1_max", "train_seconds", "test_images_per_second"]


def categories_of(dataset: str, root: str, requested: str | None) -> list[str | None]:
    if requested:
        return [c.strip() for c in requested.split(",") if c.strip()]
    if dataset == "textures":
        from reconad.data.textures import DEFAULT_CATEGORIES

        return list(DEFAULT_CATEGORIES)
    if dataset == "mvtec":
        from reconad.data.mvtec import list_categories

        return list(list_categories(root))
    return [None]


def localization(dataset: str, root: str, out: str | Path, model: str = "hfr", categories: str | None = None,
                 image_size: int = 256, resize_mode: str = "resize", heatmaps: int = 0,
                 options: dict[str, Any] | None = None, echo: bool = True) -> dict[str, Any]:
    """Train and test ``model`` on every category; write ``results.json`` and ``results.md``."""
    options = dict(options or {})
    out = Path(out)
    rows = []
    for cat in categories_of(dataset, root, categories):
        spec = DataSpec(dataset=dataset, root=root, category=cat, image_size=image_size, resize_mode=resize_mode)
        run = out / (cat or dataset)
        t0 = time.perf_counter()
        train_run(spec, run, model=model, **options)
        train_s = time.perf_counter() - t0
        m = test_run(run, heatmaps=heatmaps)
        row = {**m, "category": cat or dataset, "train_seconds": train_s,
               "test_images_per_second": m["images_per_second"]}
        rows.append(row)
        if echo:
            print(f"{row['category']}: image AUROC {m['image_auroc']:.4f}  pixel AUROC "
                  f"{m.get('pixel_auroc', float('nan')):.4f}  PRO {m.get('pro', float('nan')):.4f}  "
                  f"(train {train_s:.0f}s)", flush=True)
    mean = {k: float(np.nanmean([r[k] for r in rows if k in r])) for k in KEYS[1:] if any(k in r for r in rows)}
    mean["category"] = "mean"
    table = format_table(rows + [mean], [k for k in KEYS if k in mean])
    result = {
        "protocol": "localization", "dataset": dataset, "root": root, "model": model,
        "date": date.today().isoformat(), "image_size": image_size, "resize_mode": resize_mode,
        "settings": options, "per_category": rows, "mean": mean,
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform(), "torch": torch.__version__},
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "results.md").write_text(f"# {model} on {dataset} ({date.today().isoformat()})\n\n{table}\n")
    if echo:
        print(table)
    return result


def run_localization(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    from reconad.runs import resolve_root

    return localization(args.dataset, resolve_root(args.dataset, args.root), args.out, model=args.model, categories=args.categories,
                        image_size=args.image_size, resize_mode=args.resize_mode, options=options)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def speed(model: str = "hfr", image_size: int = 256, n_train: int = 300, out: str | Path = "runs/speed",
          options: dict[str, Any] | None = None, echo: bool = True) -> dict[str, Any]:
    """Training time on ``n_train`` texture images and inference throughput at batch 1 and 16."""
    import tempfile

    from reconad.data import build_image_dataset
    from reconad.data.textures import generate_textures
    from reconad.detector import Detector

    options = dict(options or {})
    options.setdefault("progress", False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_textures(tmp, categories=("brick",), image_size=image_size, n_train=n_train,
                                 n_test_good=8, n_test_defect_per_type=2)
        train = build_image_dataset("mvtec", str(root), category="brick", split="train", image_size=image_size)
        images = torch.stack([train[i].image for i in range(16)])
        det = Detector(model, image_size=image_size, **options)
        t0 = time.perf_counter()
        det.fit(train)
        train_s = time.perf_counter() - t0
    rss_after_train = peak_rss_mib()
    net = det.model
    assert net is not None
    rates = {}
    with torch.inference_mode():
        for bs in (1, 16):
            x = images[:bs]
            net(x)  # warm-up
            reps = max(2, 32 // bs)
            t = time.perf_counter()
            for _ in range(reps):
                net(x)
            dt = time.perf_counter() - t
            rates[bs] = reps * bs / dt
    result = {
        "protocol": "speed", "model": model, "image_size": image_size, "date": date.today().isoformat(),
        "train_images": n_train, "train_seconds": train_s, "epochs_run": det.history.epochs_run if det.history else None,
        "prepare_seconds": det.history.prepare_seconds if det.history else None,
        "images_per_second_batch1": rates[1], "images_per_second_batch16": rates[16],
        "ms_per_image_batch1": 1000.0 / rates[1], "ms_per_image_batch16": 1000.0 / rates[16],
        "peak_rss_mib_after_training": rss_after_train, "peak_rss_mib": peak_rss_mib(), "torch_threads": threads,
        "settings": options,
    }
    (out / "speed.json").write_text(json.dumps(result, indent=2, default=str))
    if echo:
        print(json.dumps(result, indent=2, default=str))
    return result
