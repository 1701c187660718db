"""Train / test / predict on a run directory: what the CLI and the demo call.

A run directory holds ``model/`` (safetensors + JSON), ``run.json`` (which data it was
trained on, so ``test`` can find the test split again), ``checkpoints/`` (per epoch,
for ``--resume``), and after testing ``metrics.json`` and ``scores.csv``.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from reconad.atomic import atomic_open
from reconad.data.base import check_disjoint
from reconad.data.records import Batch, ImageBatch
from reconad.data.sizes import dataset_size
from reconad.data.spec import DataSpec, split_if_readable
from reconad.detector import Detector
from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.inference import DEFAULT_ENGINE, RUN_FILE, Pipeline, open_run
from reconad.jsonfile import write_json
from reconad.metrics import evaluate, undefined_reasons
from reconad.rundir import recorded_spec
from reconad.streaming import StreamResult
from reconad.visualize import save_overlay


def train_run(
    spec: DataSpec,
    out: str | os.PathLike,
    model: str = "hfr",
    resume: bool = False,
    overwrite: bool = False,
    **config: Any,
) -> Detector:
    """Train into the run directory ``out``.  One that already holds a run is refused unless
    ``resume`` (continue it in place) or ``overwrite`` (replaced once the new run has
    succeeded): see reconad.rundir."""
    from reconad.rundir import run_directory, save_model, write_run_info

    spec, geometry = _auto_geometry(spec, model, config)
    config.setdefault("image_size", spec.image_size)
    config.setdefault("resize_mode", spec.resize_mode)
    if spec.tile_size is not None:
        config.setdefault("tile_size", spec.tile_size)
    det = Detector(model, **config).check_params()  # a bad option: refused before any data is read
    _check_label_policy(spec, det)
    with run_directory(out, spec.__dict__, model, resume=resume, overwrite=overwrite) as work:
        train = spec.build("train")
        if dataset_size(train) == 0:
            raise DataError(f"the training set is empty: {spec.root}")
        val = spec.build("val") if spec.has_val_split() else None
        check_disjoint(train, split_if_readable(spec, "test"))  # before training, not after it
        record = {"data": spec.__dict__, "model": model, **({"geometry": geometry} if geometry else {})}
        if not (resume and (work / "checkpoints").exists()):  # a new run says its data before a kill can cut it
            write_run_info(work, record)  # (a resumed one's was checked)
        t0 = time.perf_counter()
        det.fit(train, val_data=val, checkpoint_dir=work / "checkpoints", resume=resume)
        save_model(det, work / "model")
        seconds, n_train = time.perf_counter() - t0, dataset_size(train)
        write_run_info(work, {**record, "train_seconds": seconds, "train_images": n_train})
    return det


def _auto_geometry(spec: DataSpec, model: str, config: dict[str, Any]) -> tuple[DataSpec, dict[str, Any] | None]:
    """With ``--set geometry=auto``: the geometry chosen from the training split's image
    files (their sizes only) becomes the data's, so train, test and predict read the images
    as the model was trained; (spec, the choice's record) — the spec as given otherwise."""
    from dataclasses import replace

    from reconad.data.geometry import apply_geometry, dataset_paths
    from reconad.models import model_entry

    if config.get("geometry") != "auto":
        return spec, None
    asked = int(config.get("image_size", spec.image_size))
    settings: dict[str, Any] = {"geometry": "auto", "image_size": asked}
    paths = dataset_paths(replace(spec, image_size=asked).build("train"))
    if not paths:
        raise DataError(f"--set geometry=auto: no training image files under {spec.root} to choose from")
    record = apply_geometry(settings, paths, model_entry(model)[0].min_image_size)  # the Detector's own choice
    for key in ("image_size", "resize_mode", "tile_size"):
        config.pop(key, None)
    config["geometry"] = None  # chosen here, once: the detector takes it as given
    chosen = replace(
        spec, image_size=settings["image_size"], resize_mode=settings["resize_mode"], tile_size=settings["tile_size"]
    )
    return chosen, record


def _check_label_policy(spec: DataSpec, det: Detector) -> None:
    """Labelled anomalies for a model that trains on normal data only: refused before any data
    is read, naming the option that brought them (not the ``y`` the Python API would name)."""
    from reconad.errors import ConfigError
    from reconad.models import label_learners, model_uses_labels

    option = "--labelled-anomalies" if spec.labelled_anomalies else "--labelled-fraction"
    if not (spec.labelled_anomalies or spec.labelled_fraction) or spec.drop_labelled:
        return
    if not model_uses_labels(det.model_name, det.model_config):
        semi = ", ".join(label_learners())
        raise ConfigError(
            f"{option}: model {det.model_name} trains on normal data only; "
            f"drop {option} or use a model that learns from labelled anomalies ({semi})"
        )


def load_run(run: str | os.PathLike) -> tuple[Detector, DataSpec | None]:
    """A run's detector and the data it was trained on (None when run.json is missing);
    one-line errors for a run without a model (an interrupted training) or a damaged run.json."""
    run = Path(run)
    if not run.is_dir():
        raise DataError(f"no such run directory: {run}")
    if not (run / "model").exists() and any((run / name).exists() for name in (RUN_FILE, "checkpoints")):
        raise ModelFileError(
            f"{run} holds no trained model yet (its training failed or was interrupted): "
            "continue it with `reconad train ... --resume` and the same options"
        )
    return Detector.load(run / "model"), recorded_spec(run)


@dataclass
class ScoredSplit:
    """What one scoring pass over a test split gives: scores, maps and the ground truth."""

    scores: np.ndarray
    maps: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    paths: list[str]
    has_masks: bool
    seconds: float


class _DiskStack:
    """An (n, H, W) array in an anonymous temporary file beside the run (deleted when
    closed, even after a crash), filled batch by batch: a test split's maps and masks
    never sit in memory all at once, while metrics and reports read them per image."""

    def __init__(self, n: int, folder: Path, dtype: Any) -> None:
        self.n, self.folder, self.dtype = n, folder, dtype
        self.array: np.ndarray | None = None
        self._file: Any = None
        self.filled = 0

    def add(self, part: np.ndarray) -> None:
        import tempfile

        if self.array is None:
            self._file = tempfile.TemporaryFile(dir=self.folder, prefix=".test-")
            self.array = np.memmap(self._file, dtype=self.dtype, mode="w+", shape=(self.n, *part.shape[1:]))
        if part.shape[1:] != self.array.shape[1:]:
            raise DataError(
                f"test images differ in size under tiling ({part.shape[1:]} vs {self.array.shape[1:]}): "
                "pixel metrics need one size; score them with `reconad predict`"
            )
        self.array[self.filled : self.filled + len(part)] = part
        self.filled += len(part)


def score_test_split(pipe: Pipeline, test: Dataset, scores_csv: Path, folder: Path) -> ScoredSplit:
    """Score every test image once through ``pipe``: rows appended to ``scores_csv`` (path,
    score, p-value, label, prediction) and flushed batch by batch, maps and masks written to
    disk-backed arrays in ``folder``, labels and paths kept."""
    n = dataset_size(test)
    labels: list[np.ndarray] = []
    paths: list[str] = []
    with_masks: list[bool] = []
    maps, masks = _DiskStack(n, folder, np.float32), _DiskStack(n, folder, np.bool_)
    scores: list[np.ndarray] = []

    def collect(batch: Batch) -> None:  # ground truth from the same pass that scores
        assert isinstance(batch, ImageBatch) and batch.label is not None and batch.mask is not None
        labels.append(batch.label.numpy())
        masks.add(batch.mask[:, 0].numpy() > 0.5)
        paths.extend(batch.path)
        with_masks.append(batch.has_mask)

    t0 = time.perf_counter()
    with atomic_open(scores_csv, "w", newline="") as fh:  # the old file stays whole until this one is
        w = csv.writer(fh)
        w.writerow(["path", "score", "p_value", "label", "predicted"])
        for s, m in pipe.iter_dataset(test, want_maps=True, on_batch=collect, show_progress=True):
            if m is None:
                raise DataError(f"{pipe.model_name} gives no anomaly maps; `reconad test` needs them")
            maps.add(m)
            first = len(paths) - len(s)
            flags = pipe.labels(s)
            for j, (p, score, pv, lab) in enumerate(zip(paths[first:], s, pipe.p_values(s), labels[-1])):
                w.writerow([p, f"{score:.6f}", f"{pv:.6f}", int(lab), 0 if flags is None else int(flags[j])])
            fh.flush()
            scores.append(s)
    assert maps.array is not None and masks.array is not None
    return ScoredSplit(
        scores=np.concatenate(scores),
        maps=maps.array,
        labels=np.concatenate(labels),
        masks=masks.array,
        paths=paths,
        has_masks=any(with_masks),
        seconds=time.perf_counter() - t0,
    )


def split_metrics(pipe: Pipeline, spec: DataSpec, tp: ScoredSplit) -> dict[str, Any]:
    """Image and pixel metrics of a test pass, the threshold's realised rates and its basis."""
    y, scores = tp.labels, tp.scores
    metrics: dict[str, Any] = {
        k: float(v)
        for k, v in evaluate(
            y,
            scores,
            masks=tp.masks if tp.has_masks else None,
            maps=tp.maps if tp.has_masks else None,
            has_masks=tp.has_masks,
        ).items()
    }
    cal, threshold = pipe.calibrated.calibration, pipe.threshold
    metrics.update(
        {
            "n_test": len(y),
            "n_anomalous": int(y.sum()),
            "threshold": threshold,
            "threshold_basis": cal.basis if cal is not None else None,
            "calibration": cal.to_dict() if cal is not None else None,
            "test_seconds": tp.seconds,
            "images_per_second": len(y) / max(tp.seconds, 1e-9),
            "dataset": spec.dataset,
            "category": spec.category,
            "data": spec.describe(),
        }
    )
    if threshold is not None:
        pred = scores > threshold
        metrics["false_alarm_rate"] = float(pred[y == 0].mean()) if (y == 0).any() else float("nan")
        if cal is not None and (y == 0).any():
            from reconad.calibration import measured_note

            metrics["expected_vs_measured"] = measured_note(cal, int(pred[y == 0].sum()), int((y == 0).sum()))
        metrics["detection_rate"] = float(pred[y == 1].mean()) if (y == 1).any() else float("nan")
    if (y == 0).any() and (y == 1).any():
        from reconad.calibration import f1_optimal_threshold

        # Chosen on the test labels themselves: a reference, never the model's threshold.
        metrics["f1_threshold_on_test"], _ = f1_optimal_threshold(scores[y == 0], scores[y == 1])
    why = undefined_reasons(y, tp.masks if tp.has_masks else None, tp.has_masks)
    undefined = {k: r for k, r in why.items() if isinstance(metrics.get(k), float) and not np.isfinite(metrics[k])}
    if undefined:  # metrics.json writes these as null: say why, there and on stderr
        metrics["undefined"] = undefined
        for reason in sorted(set(undefined.values())):
            warnings.warn(reason, stacklevel=2)
    return metrics


def write_heatmaps(out: Path, pipe: Pipeline, test: Dataset, tp: ScoredSplit, count: int) -> None:
    """Overlays of the ``count`` most anomalous test images and of two normal ones; ``out``
    belongs to this command, so the overlays of an earlier call are removed first."""
    if out.is_dir():
        for old in out.glob("*.png"):
            old.unlink()
    vmin, vmax = pipe.calibrated.color_range
    order = np.argsort(-tp.scores)
    picks = list(order[:count])
    normals = [i for i in order if tp.labels[i] == 0][:2]
    for i in picks + [i for i in normals if i not in picks]:
        item = test[int(i)]
        where = Path(tp.paths[i])
        name = f"{'anomalous' if tp.labels[i] else 'normal'}_{where.parent.name}_{where.stem}.png"
        mask = tp.masks[i] if tp.has_masks else None
        save_overlay(out / name, item.image, tp.maps[i], vmin, vmax, mask=mask)


def align_spec(spec: DataSpec, pipe: Pipeline) -> DataSpec:
    """Read the data the way ``pipe`` scores it (its image size, resize mode and tiling)."""
    spec.image_size = pipe.spec.image_size
    spec.resize_mode = pipe.spec.resize_mode
    spec.tile_size = None if pipe.tiler is None else pipe.tiler.tile
    return spec


def evaluate_run(
    run: str | os.PathLike,
    spec: DataSpec | None = None,
    heatmaps: int = 0,
    report: bool = False,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    engine: str = DEFAULT_ENGINE,
) -> dict[str, Any]:
    """Evaluate on the test split; write metrics.json and scores.csv (and heat maps, and with
    ``report`` the HTML report of reconad.report, from this same pass: nothing is scored twice).
    ``engine``: see reconad.inference (ONNX Runtime where the run has an export)."""
    run = Path(run)
    pipe = open_run(run, engine, tile_size, tile_overlap)
    saved = recorded_spec(run)
    spec = spec or saved
    if spec is None:
        raise DataError(f"{run} does not say what data it was trained on: give --dataset/--root/--category")
    align_spec(spec, pipe)
    test = spec.build("test")
    if dataset_size(test) == 0:
        raise DataError(f"the test split is empty: {spec.root}")
    check_disjoint(split_if_readable(saved or spec, "train"), test)
    tp = score_test_split(pipe, test, run / "scores.csv", run)
    metrics = {**split_metrics(pipe, spec, tp), "engine": pipe.engine, "pipeline": pipe.identity.to_dict()}
    write_json(run / "metrics.json", metrics)  # strict JSON: undefined metrics are null
    if heatmaps:
        write_heatmaps(run / "heatmaps", pipe, test, tp, heatmaps)
    elif (run / "heatmaps").is_dir():  # --heatmaps 0: no overlays of an earlier test stay
        shutil.rmtree(run / "heatmaps")
    if report:
        from reconad.report import write_report

        write_report(
            run,
            scores=tp.scores,
            labels=tp.labels,
            paths=tp.paths,
            maps=tp.maps,
            images=lambda i: test[int(i)].image,
            masks=tp.masks if tp.has_masks else None,
            metrics=metrics,
            color_range=pipe.calibrated.color_range,
            model=pipe.model_name,
        )
    return metrics


def export_run(run: str | os.PathLike, fmt: str = "onnx", out: str | os.PathLike | None = None) -> Path:
    """Export a run's model (default ``RUN/export/model.onnx``, with ``model.json`` beside it)."""
    from reconad.export import EXPORT_FORMATS, export_pipeline
    from reconad.inference import EXPORT_FILE, NotImages

    if fmt not in EXPORT_FORMATS:
        raise DataError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    try:
        pipe = open_run(run, "torch")
    except NotImages as exc:  # table rows and clips have no image graph to write
        raise ConfigError(f"cannot export {exc.model_name}: {exc}") from None
    target = Path(out) if out is not None else Path(run) / EXPORT_FILE
    return export_pipeline(pipe, target, weights_sha256=pipe.origin.model_sha256)


def predict_run(
    run: str | os.PathLike,
    paths: list[str],
    out: str | os.PathLike,
    engine: str = DEFAULT_ENGINE,
    resume: bool = False,
    strict: bool = False,
    progress: bool = True,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    overlays: str = "all",
) -> StreamResult:
    """Score images with the run's pipeline (reconad.quick_predict.predict: scores.csv,
    errors.csv, overlays, streaming, ``resume``, torchrun shards)."""
    from reconad.quick_predict import predict

    return predict(run, paths, out, engine, resume, strict, progress, tile_size, tile_overlap, overlays)
