"""``localization``: train and test one model per category (MVTec layout, textures, tiles, folders).

Per category: ``reconad.runs.train_run`` on the training split, then
``reconad.runs.evaluate_run`` on the test split (image AUROC / AUPR / F1-max, pixel
AUROC and PRO where the split has masks); the table gives each category and the mean.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from reconad.protocols.results import Results, markdown_table, write_results
from reconad.protocols.settings import LocalizationSettings

KEYS = ["category", "image_auroc", "pixel_auroc", "pro", "image_f1_max", "train_seconds", "test_images_per_second"]


def categories_of(dataset: str, root: str, requested: list[str] | None) -> list[str | None]:
    """The categories to run: as requested, else every one the dataset has."""
    if requested:
        return list(requested)
    if dataset == "textures":
        from reconad.data.textures import DEFAULT_CATEGORIES

        return list(DEFAULT_CATEGORIES)
    if dataset == "mvtec":
        from reconad.data.mvtec import list_categories

        return list(list_categories(root))
    return [None]


def _data_description(dataset: str, root: str, categories: list[str | None]) -> str:
    named = ", ".join(c for c in categories if c) or "the whole set"
    return f"{dataset} at {root} ({named}); the dataset's own train/test split"


def run(settings: LocalizationSettings) -> dict[str, Any]:
    """Train and test ``settings.model`` on every category; write results.json / results.md."""
    from reconad.runs import DataSpec, evaluate_run, resolve_root, train_run

    s = settings
    root = resolve_root(s.dataset, s.root)
    out = Path(s.out)
    rows = []
    categories = categories_of(s.dataset, root, s.categories)
    for cat in categories:
        spec = DataSpec(dataset=s.dataset, root=root, category=cat, image_size=s.image_size, resize_mode=s.resize_mode)
        run_dir = out / (cat or s.dataset)
        t0 = time.perf_counter()
        train_run(spec, run_dir, model=s.model, **s.options)
        train_s = time.perf_counter() - t0
        m = evaluate_run(run_dir, heatmaps=s.heatmaps)
        row = {
            **m,
            "category": cat or s.dataset,
            "train_seconds": train_s,
            "test_images_per_second": m["images_per_second"],
        }
        rows.append(row)
        if s.echo:
            print(
                f"{row['category']}: image AUROC {m['image_auroc']:.4f}  pixel AUROC "
                f"{m.get('pixel_auroc', float('nan')):.4f}  PRO {m.get('pro', float('nan')):.4f}  "
                f"(train {train_s:.0f}s)",
                flush=True,
            )
    mean: dict[str, Any] = {
        k: float(np.nanmean([r[k] for r in rows if k in r])) for k in KEYS[1:] if any(k in r for r in rows)
    }
    mean["category"] = "mean"
    table = markdown_table([*rows, mean], [k for k in KEYS if k in mean])
    payload = {
        "dataset": s.dataset,
        "root": root,
        "model": s.model,
        "image_size": s.image_size,
        "resize_mode": s.resize_mode,
        "per_category": rows,
        "mean": mean,
    }
    doc = write_results(
        out,
        Results(
            protocol="localization",
            title=f"{s.model} on {s.dataset}",
            data=_data_description(s.dataset, root, categories),
            command=s.command,
            settings=dict(s.options),
            payload=payload,
            body=table,
        ),
    )
    if s.echo:
        print(table)
    return doc
