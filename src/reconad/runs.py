"""Train / test / predict on a run directory: what the CLI and the demo call.

A run directory holds ``model/`` (safetensors + JSON), ``run.json`` (which data it was
trained on, so ``test`` can find the test split again), ``checkpoints/`` (per epoch,
for ``--resume``), and after testing ``metrics.json`` and ``scores.csv``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from reconad.data.records import ImageBatch
from reconad.detector import Detector
from reconad.errors import DataError
from reconad.metrics import evaluate
from reconad.visualize import save_overlay

RUN_FILE = "run.json"
#: where the embedded texture data is generated when no --root is given
DEFAULT_TEXTURES_ROOT = "demo-data/textures"


def resolve_root(dataset: str, root: str | os.PathLike | None) -> str:
    """Absolute dataset root; the texture data may be generated, every other root must exist."""
    if root is None:
        if dataset != "textures":
            raise DataError(f"--root is required for --dataset {dataset}")
        root = DEFAULT_TEXTURES_ROOT
    path = Path(root)
    if dataset != "textures" and not path.exists():
        raise DataError(f"dataset root not found: {path}")
    return str(path.resolve())


@dataclass
class DataSpec:
    dataset: str
    root: str
    category: str | None = None
    image_size: int = 256
    resize_mode: str = "resize"

    def build(self, split: str):
        from reconad.data import build_image_dataset

        return build_image_dataset(
            self.dataset,
            self.root,
            category=self.category,
            split=split,
            image_size=self.image_size,
            resize_mode=self.resize_mode,
        )

    def has_val_split(self) -> bool:
        from reconad.data import WITH_VAL_SPLIT

        return self.dataset in WITH_VAL_SPLIT


def train_run(
    spec: DataSpec, out: str | os.PathLike, model: str = "hfr", resume: bool = False, **config: Any
) -> Detector:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config.setdefault("image_size", spec.image_size)
    config.setdefault("resize_mode", spec.resize_mode)
    det = Detector(model, **config)
    train = spec.build("train")
    if len(train) == 0:
        raise DataError(f"the training set is empty: {spec.root}")
    val = spec.build("val") if spec.has_val_split() else None
    (out / RUN_FILE).write_text(json.dumps({"data": spec.__dict__, "model": model}, indent=2))
    t0 = time.perf_counter()
    det.fit(train, val_data=val, checkpoint_dir=out / "checkpoints", resume=resume)
    det.save(out / "model")
    info = json.loads((out / RUN_FILE).read_text())
    info["train_seconds"] = time.perf_counter() - t0
    info["train_images"] = len(train)
    (out / RUN_FILE).write_text(json.dumps(info, indent=2))
    return det


def load_run(run: str | os.PathLike) -> tuple[Detector, DataSpec | None]:
    run = Path(run)
    if not run.is_dir():
        raise DataError(f"no such run directory: {run}")
    det = Detector.load(run / "model")
    spec = None
    if (run / RUN_FILE).exists():
        info = json.loads((run / RUN_FILE).read_text())
        spec = DataSpec(**info["data"])
    return det, spec


def test_run(
    run: str | os.PathLike, spec: DataSpec | None = None, heatmaps: int = 0, report: bool = False
) -> dict[str, Any]:
    """Evaluate on the test split; write metrics.json and scores.csv (and heat maps, and with
    ``report`` the HTML report of reconad.report, from this same pass: nothing is scored twice)."""
    run = Path(run)
    det, saved = load_run(run)
    spec = spec or saved
    if spec is None:
        raise DataError(f"{run} does not say what data it was trained on: give --dataset/--root/--category")
    spec.image_size = int(det.settings["image_size"])
    spec.resize_mode = str(det.settings["resize_mode"])
    test = spec.build("test")
    if len(test) == 0:
        raise DataError(f"the test split is empty: {spec.root}")
    t0 = time.perf_counter()
    labels, masks, paths, with_masks = [], [], [], []

    def collect(batch: ImageBatch) -> None:  # ground truth from the same pass that scores
        labels.append(batch.label.numpy())
        masks.append(batch.mask[:, 0].numpy() > 0.5)
        paths.extend(batch.path)
        with_masks.append(batch.has_mask)

    scores, maps = det.score_and_map(test, on_batch=collect)
    seconds = time.perf_counter() - t0
    has_masks = any(with_masks)
    y = np.concatenate(labels)
    gt = np.concatenate(masks)
    metrics = evaluate(
        y, scores, masks=gt if has_masks else None, maps=maps if has_masks else None, has_masks=has_masks
    )
    metrics = {k: float(v) for k, v in metrics.items()}
    metrics.update(
        {
            "n_test": int(len(y)),
            "n_anomalous": int(y.sum()),
            "threshold": det.threshold,
            "threshold_basis": det.calibration.basis if det.calibration is not None else None,
            "calibration": det.calibration.to_dict() if det.calibration is not None else None,
            "test_seconds": seconds,
            "images_per_second": len(y) / max(seconds, 1e-9),
            "dataset": spec.dataset,
            "category": spec.category,
        }
    )
    if det.threshold is not None:
        pred = scores > det.threshold
        metrics["false_alarm_rate"] = float(pred[y == 0].mean()) if (y == 0).any() else float("nan")
        metrics["detection_rate"] = float(pred[y == 1].mean()) if (y == 1).any() else float("nan")
    if (y == 0).any() and (y == 1).any():
        from reconad.calibration import f1_optimal_threshold

        # Chosen on the test labels themselves: a reference, never the model's threshold.
        metrics["f1_threshold_on_test"], _ = f1_optimal_threshold(scores[y == 0], scores[y == 1])
    p_values = _p_values(det, scores)
    (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
    with open(run / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "score", "p_value", "label", "predicted"])
        for p, s, pv, lab in zip(paths, scores, p_values, y):
            w.writerow([p, f"{s:.6f}", f"{pv:.6f}", int(lab), int(det.threshold is not None and s > det.threshold)])
    if heatmaps:
        vmin, vmax = map_range(det)
        order = np.argsort(-scores)
        picks = list(order[:heatmaps])
        normals = [i for i in order if y[i] == 0][:2]
        for i in picks + [i for i in normals if i not in picks]:
            item = test[int(i)]
            name = f"{'anomalous' if y[i] else 'normal'}_{Path(paths[i]).parent.name}_{Path(paths[i]).stem}.png"
            save_overlay(run / "heatmaps" / name, item.image, maps[i], vmin, vmax, mask=gt[i] if has_masks else None)
    if report:
        from reconad.report import write_report

        write_report(
            run,
            scores=scores,
            labels=y,
            paths=paths,
            maps=maps,
            images=lambda i: test[int(i)].image,
            masks=gt if has_masks else None,
            metrics=metrics,
            color_range=map_range(det),
            model=det.model_name,
        )
    return metrics


def _p_values(det: Detector, scores: np.ndarray) -> np.ndarray:
    """Conformal p-values of ``scores`` (nan for a model saved without a calibration)."""
    return det.calibration.p_values(scores) if det.calibration is not None else np.full(len(scores), np.nan)


def map_range(det: Detector) -> tuple[float, float]:
    """Colour range of heat maps: 0 (a typical normal pixel) to the image threshold."""
    vmax = det.threshold if det.threshold is not None and det.threshold > 0 else 1.0
    return 0.0, float(vmax)


ENGINES = ("torch", "onnx")
#: where ``reconad export RUN`` writes the ONNX model (and where ``--engine onnx`` looks)
EXPORT_FILE = Path("export") / "model.onnx"


def export_run(run: str | os.PathLike, fmt: str = "onnx", out: str | os.PathLike | None = None) -> Path:
    """Export a run's model (default ``RUN/export/model.onnx``, with ``model.json`` beside it)."""
    from reconad.export import EXPORT_FORMATS, export_onnx

    if fmt not in EXPORT_FORMATS:
        raise DataError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    det, _ = load_run(run)
    return export_onnx(det, Path(out) if out is not None else Path(run) / EXPORT_FILE)


def _score_onnx(run: Path, det: Detector, ds, batch_size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Scores and maps from the run's exported ONNX model (exported first if missing)."""
    from torch.utils.data import DataLoader

    from reconad.data.records import collate_images
    from reconad.export import OnnxDetector

    path = run / EXPORT_FILE
    weights = [p.stat().st_mtime for p in (run / "model").glob("*") if p.is_file()]
    if not path.exists() or (weights and path.stat().st_mtime < max(weights)):  # missing or older than the model
        export_run(run, "onnx", path)
    session = OnnxDetector(path)
    scores, maps = [], []
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False, collate_fn=collate_images):
        s, m = session(batch.image)
        scores.append(s)
        maps.append(m)
    return np.concatenate(scores), np.concatenate(maps)


def predict_run(run: str | os.PathLike, paths: list[str], out: str | os.PathLike, engine: str = "torch") -> Path:
    """Score images with the run's model (PyTorch, or its ONNX export with onnxruntime);
    write ``scores.csv`` (score, p-value, label at the threshold) and heat-map overlays."""
    from reconad.data.inputs import expand_paths, path_dataset

    if engine not in ENGINES:
        raise DataError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    det, _ = load_run(run)
    files = expand_paths(paths)
    ds = path_dataset(files, int(det.settings["image_size"]), str(det.settings["resize_mode"]))
    scores, maps = _score_onnx(Path(run), det, ds) if engine == "onnx" else det.score_and_map(ds)
    p_values = _p_values(det, scores)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vmin, vmax = map_range(det)
    with open(out / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "score", "p_value", "label"])
        for i, (p, s, pv) in enumerate(zip(files, scores, p_values)):
            label = int(det.threshold is not None and s > det.threshold)
            w.writerow([str(p), f"{s:.6f}", f"{pv:.6f}", label])
            save_overlay(out / f"{i:04d}_{p.stem}.png", ds[i].image, maps[i], vmin, vmax)
    return out / "scores.csv"


def format_table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    """A small Markdown table."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "nan" if v != v else f"{v:.4f}"
        return str(v)

    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |")
    return "\n".join(lines)
