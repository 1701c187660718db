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


def _data_description(dataset: str, root: str, categories: list[str | None], labelled_fraction: float = 0.0) -> str:
    named = ", ".join(c for c in categories if c) or "the whole set"
    text = f"{dataset} at {root} ({named}); the dataset's own train/test split"
    if labelled_fraction:
        text += (
            f", with {labelled_fraction:g} of each defect class moved into training as labelled anomalies "
            "(and out of the test split)"
        )
    return text


def _run_model(s: LocalizationSettings, model: str, root: str, categories: list[str | None]) -> dict[str, Any]:
    """Train and test one model on every category; its rows and their mean."""
    from reconad.data.spec import DataSpec
    from reconad.models import model_uses_labels
    from reconad.runs import evaluate_run, train_run

    rows = []
    out = Path(s.out) / model if len(s.model_names()) > 1 else Path(s.out)
    for cat in categories:
        spec = DataSpec(
            dataset=s.dataset,
            root=root,
            category=cat,
            image_size=s.image_size,
            resize_mode=s.resize_mode,
            labelled_fraction=s.labelled_fraction,
            drop_labelled=bool(s.labelled_fraction) and not model_uses_labels(model, s.options),
        )
        run_dir = out / (cat or s.dataset)
        t0 = time.perf_counter()
        train_run(spec, run_dir, model=model, overwrite=True, **s.options)  # a benchmark re-run replaces its runs
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
                f"{model} {row['category']}: image AUROC {m['image_auroc']:.4f}  pixel AUROC "
                f"{m.get('pixel_auroc', float('nan')):.4f}  PRO {m.get('pro', float('nan')):.4f}  "
                f"(train {train_s:.0f}s)",
                flush=True,
            )
    mean: dict[str, Any] = {
        k: float(np.nanmean([r[k] for r in rows if k in r])) for k in KEYS[1:] if any(k in r for r in rows)
    }
    mean["category"] = "mean"
    return {"per_category": rows, "mean": mean}


def _side_by_side(per_model: dict[str, dict[str, Any]]) -> str:
    """One row per category, image / pixel AUROC and PRO of every model."""
    models = list(per_model)
    first = per_model[models[0]]
    rows = []
    for i, r in enumerate([*first["per_category"], first["mean"]]):
        row: dict[str, Any] = {"category": r["category"]}
        for m in models:
            src = [*per_model[m]["per_category"], per_model[m]["mean"]][i]
            for k, short in (("image_auroc", "image"), ("pixel_auroc", "pixel"), ("pro", "PRO")):
                if k in src:
                    row[f"{m} {short}"] = src[k]
        rows.append(row)
    keys = ["category", *[k for k in rows[0] if k != "category"]]
    return markdown_table(rows, keys)


def run(settings: LocalizationSettings) -> dict[str, Any]:
    """Train and test every model of ``settings.model`` (comma-separated) on every category, on
    the same splits; write results.json / results.md (a table per model, and side by side)."""
    from reconad.data.spec import resolve_root

    s = settings
    root = resolve_root(s.dataset, s.root)
    categories = categories_of(s.dataset, root, s.categories)
    per_model = {m: _run_model(s, m, root, categories) for m in s.model_names()}
    tables = []
    for m, r in per_model.items():
        table = markdown_table([*r["per_category"], r["mean"]], [k for k in KEYS if k in r["mean"]])
        tables.append(f"## {m}\n\n{table}\n" if len(per_model) > 1 else table)
    body = "\n".join(tables)
    if len(per_model) > 1:
        body += "\n## Side by side (same data, same splits)\n\n" + _side_by_side(per_model) + "\n"
    first = per_model[s.model_names()[0]]
    payload = {
        "dataset": s.dataset,
        "root": root,
        "model": s.model,
        "image_size": s.image_size,
        "resize_mode": s.resize_mode,
        "per_category": first["per_category"],
        "mean": first["mean"],
        "per_model": per_model,
    }
    results = Results(
        protocol="localization",
        title=f"{s.model} on {s.dataset}",
        data=_data_description(s.dataset, root, categories, s.labelled_fraction),
        command=s.command,
        settings=dict(s.options),
        payload=payload,
        body=body,
    )
    doc = write_results(s.out, results)
    if s.echo:
        print(body)
    return doc
