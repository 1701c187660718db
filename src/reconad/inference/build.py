"""Building pipelines: from a fitted ``Detector``, from a run folder (the one reader of a
run's model JSON and export JSON for scoring), and new ones from an existing pipeline.

Engines: ``torch``; ``onnx`` (ONNX Runtime on ``RUN/export/model.onnx``); ``onnx-int8``
(the int8 export, offered only where its accuracy check passed); ``openvino`` (OpenVINO
on the float export, the optional extra ``reconad[openvino]``); ``auto``: ONNX Runtime
where the run already has a valid export, PyTorch otherwise.  Exporting is an explicit
step: ``reconad export RUN``, or an ONNX engine (``onnx``, ``openvino``) asked for by
name on a run without an export, which writes it first.  ``auto`` never writes one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import warnings
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.inference.calibrated import Calibrated, calibration_from_config
from reconad.inference.engines import (
    DEFAULT_ENGINE,
    FILE_ENGINES,
    OnnxScorer,
    OpenVinoScorer,
    Scorer,
    TorchScorer,
    check_engine_name,
)
from reconad.inference.exports import EXPORT_FILE, check_export, int8_export
from reconad.inference.pipeline import FittedPipeline, Origin
from reconad.inference.run_files import read_run_info
from reconad.inference.spec import InputSpec
from reconad.inference.tiler import Tiler

if TYPE_CHECKING:
    from reconad.detector import Detector

__all__ = ["NotImages", "from_detector", "open_run", "rebuild"]

log = logging.getLogger("reconad")

#: images per engine call for the exported engines on a CPU (scores do not depend on it)
FILE_BATCH = 4


class NotImages(ConfigError):
    """The model scores table rows or video clips: pipelines score images."""

    def __init__(self, message: str, kind: str, model_name: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.model_name = model_name


class Pipeline(FittedPipeline):
    """The fitted pipeline (``reconad.inference.pipeline.FittedPipeline``: spec, engine,
    tiler, calibration, identity) and the new pipelines built from it: another engine,
    another tiling, another exported file.  Immutable: each ``with_*`` returns a new one."""

    def with_engine(self, engine: str, threads: int | None = None) -> Pipeline:
        """The same model, tiling and calibration rules, scored by ``engine``."""
        return rebuild(self, engine=engine, threads=threads)

    def with_engine_file(self, engine: str, path: str | Path, threads: int | None = None) -> Pipeline:
        """The same pipeline running the exported file ``path`` with ``engine`` (``onnx``,
        ``onnx-int8``, ``openvino``), taken as given: for a file checked elsewhere (the int8
        accuracy check scores its candidate file, the speed protocol its own exports)."""
        return with_engine_file(self, engine, Path(path), threads)

    def with_tiling(self, tile_size: int | None, tile_overlap: int | None = None) -> Pipeline:
        """The same model and engine scoring by other tiles (a tiling the run was not calibrated
        for drops the threshold and p-values, with a warning)."""
        return rebuild(self, tiling=(tile_size, tile_overlap))

    def with_threshold(self, threshold: float | None) -> Pipeline:
        """The same pipeline comparing scores with another threshold (p-values unchanged)."""
        value = None if threshold is None else float(threshold)
        return replace(self, calibrated=replace(self.calibrated, threshold=value))


def _overlap(tile: int, overlap: Any) -> int:
    """The overlap in use: as given, or an eighth of the tile (reconad.tiling.resolve_overlap)."""
    return int(overlap) if overlap is not None else int(tile) // 8


def _own_tiling(settings: dict[str, Any]) -> tuple[int, int] | None:
    tile = settings.get("tile_size")
    return None if tile is None else (int(tile), _overlap(int(tile), settings.get("tile_overlap")))


def _check_images(name: str, model: Any) -> None:
    kind = model.data_kind
    if kind != "image":
        what = "table rows" if kind == "table" else "video clips"
        raise NotImages(f"{name} scores {what}; a pipeline scores images", kind, name)


def from_detector(det: Detector, engine: str = "torch", threads: int | None = None) -> Pipeline:
    """The pipeline of a fitted ``Detector`` (NotFittedError before ``fit``); PyTorch on the
    detector's device unless ``engine`` names another (an ONNX engine exports the model into
    a temporary folder kept while the pipeline lives)."""
    model = det.fitted_model("pipeline")
    _check_images(det.model_name, model)
    tiling = det.tiling
    batch = det.inference_batch_size
    origin = Origin(
        None,
        {"model_config": model.config.to_dict(), "detector": dict(det.settings)},
        detector=det,
        threads=threads,
        device=str(det.scoring_device),
        run_tiling=tiling,
    )
    pipe = Pipeline(
        det.model_name,
        InputSpec(int(det.settings["image_size"]), str(det.settings["resize_mode"]), tiling is not None),
        TorchScorer(model, det.scoring_device),
        None if tiling is None else Tiler(*tiling, batch),
        det.calibrated(),
        batch,
        origin,
    )
    return pipe if engine == "torch" else rebuild(pipe, engine=engine, threads=threads)


def _check_run(run: Path) -> None:
    if not run.is_dir():
        raise DataError(f"no such run directory: {run}")
    if not (run / "model").exists() and any((run / name).exists() for name in ("run.json", "checkpoints")):
        raise ModelFileError(
            f"{run} holds no trained model yet (its training failed or was interrupted): "
            "continue it with `reconad train ... --resume` and the same options"
        )


def _check_settings(run: Path, settings: dict[str, Any]) -> None:
    """The detector settings of ``RUN/model/config.json``, checked without PyTorch (an edited
    file is a one-line ModelFileError naming it and the setting)."""
    from reconad.imaging import RESIZE_MODES

    path = run / "model" / "config.json"
    for name, low in (("image_size", 1), ("tile_size", 1), ("tile_overlap", 0)):
        value = settings.get(name)
        if value is None and name != "image_size":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ModelFileError(f"{path}: {name} must be an integer >= {low}, got {value!r} (the file was edited)")
    mode = settings.get("resize_mode", "resize")
    if mode not in RESIZE_MODES:
        raise ModelFileError(f"{path}: unknown resize_mode {mode!r} (the file was edited)")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_fitted_values(path: Path, cfg: dict[str, Any]) -> None:
    """The fitted values of a model's ``config.json`` (``path``): a threshold that is a finite
    number or null, held-out scores that are numbers, and an image model's input shape that
    is the image (or tile) size its detector settings give.  An edited file is one line
    (ModelFileError) naming it, for every engine and command alike."""
    threshold = cfg.get("threshold")
    if threshold is not None and not _number(threshold):
        raise ModelFileError(
            f"{path}: threshold must be a finite number or null, got {threshold!r} (the file was edited)"
        )
    scores = cfg.get("val_scores")
    if scores is not None and not (isinstance(scores, list) and all(_number(v) for v in scores)):
        raise ModelFileError(f"{path}: val_scores must be a list of finite numbers (the file was edited)")
    settings = cfg.get("detector") or {}
    shape = (cfg.get("model_config") or {}).get("input_shape")
    side = settings.get("tile_size") or settings.get("image_size")
    if isinstance(shape, list) and len(shape) == 3 and _number(side) and list(shape[1:]) != [side, side]:
        what = "tile_size" if settings.get("tile_size") else "image_size"
        raise ModelFileError(
            f"{path}: {what} {side} does not match the model's input shape {shape} (the file was edited)"
        )


def check_recorded_geometry(run: Path, cfg: dict[str, Any]) -> None:
    """The image size, resize mode and tiling of ``config.json`` against the other records of
    the run (``run.json``'s data, the export's pre-processing), whichever engine will score:
    an edited file is refused the same way by every engine (ModelFileError naming it)."""
    settings = cfg.get("detector") or {}
    mine = {k: settings.get(k) for k in ("image_size", "resize_mode", "tile_size")}
    records: list[tuple[Path, dict[str, Any]]] = []
    meta_json = (run / EXPORT_FILE).with_suffix(".json")
    if meta_json.is_file():
        try:
            pre = json.loads(meta_json.read_text(encoding="utf-8")).get("preprocessing") or {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            pre = {}  # a damaged export record is refused where the export is used
        tiling = pre.get("tiling") if isinstance(pre, dict) else None
        if isinstance(pre, dict) and "image_size" in pre:
            tile = tiling.get("tile_size") if isinstance(tiling, dict) else None
            records.append(
                (
                    meta_json,
                    {"image_size": pre.get("image_size"), "resize_mode": pre.get("resize_mode"), "tile_size": tile},
                )
            )
    try:
        info = read_run_info(run) if (run / "run.json").is_file() else None
    except ModelFileError:  # a damaged run.json: refused where its data record is needed (test)
        info = None
    if info and isinstance(info.get("data"), dict) and not (cfg.get("geometry") or {}).get("mode") == "auto":
        data = info["data"]
        records.append((run / "run.json", {k: data.get(k) for k in mine if k in data}))
    for where, theirs in records:
        diff = [k for k in theirs if k in mine and theirs[k] is not None and theirs[k] != mine[k]]
        if diff:
            k = diff[0]
            raise ModelFileError(
                f"{run / 'model' / 'config.json'}: {k} {mine[k]!r} differs from the {theirs[k]!r} {where} records "
                "(the file was edited)"
            )


def _check_against_export(run: Path, cfg: dict[str, Any], meta: dict[str, Any], export: Path) -> None:
    """The model options of ``config.json`` must be those the export was made with: an export
    runs without them, so an edited config would otherwise go unnoticed."""
    saved, exported = cfg.get("model_config") or {}, meta.get("model_config") or {}
    diff = sorted(k for k in saved.keys() & exported.keys() if saved[k] != exported[k])
    if diff:
        k = diff[0]
        raise ModelFileError(
            f"{run / 'model' / 'config.json'}: {', '.join(diff)} differ from what {export} was exported with "
            f"({k}: {saved[k]!r} there, {exported[k]!r} in the export): the file was edited"
        )


def _export_size(meta: dict[str, Any]) -> int:
    return int((meta.get("preprocessing") or {}).get("shape", [0, 0, 0])[2])


def _choose(run: Path, engine: str, sha: str, input_size: int) -> tuple[str, Path | None, dict[str, Any] | None]:
    """(engine to use, its file or None, the file's JSON) for a run; ``(name, None, None)``
    for an ONNX engine asked for by name whose export does not exist yet."""
    if engine == "torch":
        return "torch", None, None
    if engine == "onnx-int8":
        path, meta = int8_export(run, sha)
    else:
        path = run / EXPORT_FILE
        if not path.exists():
            if engine == "auto":
                log.info("%s has no ONNX export: scoring with PyTorch (`reconad export %s` makes one)", run, run)
                return "torch", None, None
            return engine, None, None
        meta = check_export(path, run, sha)
    if _export_size(meta) != input_size:
        if engine != "auto":
            raise ConfigError(
                f"--engine {engine}: {path} scores {_export_size(meta)}-px inputs, not the {input_size}-px tiles "
                "asked for; use --engine torch for another tile size"
            )
        warnings.warn(
            f"tiles of {input_size} px differ from the run's export ({_export_size(meta)} px); scoring with PyTorch",
            stacklevel=3,
        )
        return "torch", None, None
    return ("onnx" if engine == "auto" else engine), path, meta


def _run_calibration(run: Path, cfg: dict[str, Any], settings: dict[str, Any]) -> Calibrated:
    try:
        cal = calibration_from_config(cfg, float(settings.get("threshold_quantile") or 0.99))
    except DataError as exc:
        raise ModelFileError(f"{run / 'model'}: {exc}") from None
    threshold = cfg.get("threshold")
    return Calibrated(None if threshold is None else float(threshold), cal, "float", _own_tiling(settings))


def _engine_calibration(base: Calibrated, engine: str, meta: dict[str, Any] | None) -> Calibrated:
    """An int8 export's own calibration (its scores differ from float's) where it records one."""
    if engine != "onnx-int8" or not meta:
        return base
    return base.with_own(meta.get("int8_calibration"), "onnx-int8")


def open_run(
    run: str | os.PathLike,
    engine: str = DEFAULT_ENGINE,
    tile_size: int | None = None,
    tile_overlap: int | None = None,
    threads: int | None = None,
    device: str | None = None,
) -> Pipeline:
    """The pipeline of a run folder.  The model file is checked against its SHA-256 and any
    export against the model's (one-line ModelFileError naming the file); PyTorch is imported
    only where the engine or the tiling needs it."""
    from reconad.serialization import read_model_config

    run = Path(run)
    check_engine_name(engine)
    _check_run(run)
    cfg = read_model_config(run / "model")
    settings = dict(cfg.get("detector") or {})
    _check_settings(run, settings)
    check_fitted_values(run / "model" / "config.json", cfg)
    check_recorded_geometry(run, cfg)
    own = _own_tiling(settings)
    origin = Origin(
        str(cfg["weights_sha256"]),
        {"model_config": cfg.get("model_config") or {}, "detector": settings},
        run=run,
        threads=threads,
        device=device,
        run_tiling=own,
    )
    spec = InputSpec(int(settings["image_size"]), str(settings.get("resize_mode", "resize")), own is not None)
    tiling = _requested_tiling(own, settings, tile_size, tile_overlap)
    size = tiling[0] if tiling is not None else spec.image_size
    used, path, meta = _choose(run, engine, str(cfg["weights_sha256"]), size)
    if meta is not None and path is not None:
        _check_against_export(run, cfg, meta, path)
    calibrated = _engine_calibration(_run_calibration(run, cfg, settings), used, meta)
    scorer, batch, origin = _run_scorer(run, str(cfg["model"]), used, path, origin, calibrated)
    pipe = Pipeline(
        str(cfg["model"]),
        spec,
        scorer,
        None if own is None else Tiler(*own, batch),
        calibrated,
        batch,
        origin,
    )
    return pipe if tiling == own else _retiled(pipe, tiling)


def _requested_tiling(
    own: tuple[int, int] | None, settings: dict[str, Any], tile_size: int | None, tile_overlap: int | None
) -> tuple[int, int] | None:
    """The tiling asked for at scoring time (the run's own when neither option is given)."""
    if tile_size is None and tile_overlap is None:
        return own
    size = tile_size if tile_size is not None else settings.get("tile_size")
    if size is None:
        raise DataError("--tile-overlap needs --tile-size: this run does not score by tiles")
    overlap = tile_overlap if tile_overlap is not None else settings.get("tile_overlap")
    from reconad.tiling import check_tiling

    check_tiling(size, overlap)
    return int(size), _overlap(int(size), overlap)


def _run_scorer(
    run: Path, model_name: str, used: str, path: Path | None, origin: Origin, calibrated: Calibrated
) -> tuple[Scorer, int, Origin]:
    """The engine of a run's pipeline, its batch size, and the origin with its file recorded."""
    from reconad.serialization import sha256_of

    if used in FILE_ENGINES and path is not None:
        scorer: Scorer = _file_scorer(used, path, origin.threads)
        return scorer, FILE_BATCH, replace(origin, engine_file=path, engine_file_sha256=sha256_of(path))
    from reconad.inference.model_file import default_batch_size, load_fitted

    model, _ = load_fitted(run / "model", origin.device)
    _check_images(model_name, model)
    device = next(iter(model.parameters()), None)
    torch_scorer = TorchScorer(model, None if device is None else device.device)
    batch = default_batch_size(model, torch_scorer.device or _cpu())
    if used == "torch":
        return torch_scorer, batch, origin
    export = Pipeline(model_name, _run_spec(origin), torch_scorer, _tiler(origin.run_tiling), calibrated, batch, origin)
    target = _export_now(export, run / EXPORT_FILE, used)  # asked for by name: written now
    return (
        _file_scorer(used, target, origin.threads),
        FILE_BATCH,
        replace(origin, engine_file=target, engine_file_sha256=sha256_of(target)),
    )


def _cpu() -> Any:
    import torch

    return torch.device("cpu")


def _run_spec(origin: Origin) -> InputSpec:
    settings = origin.config.get("detector") or {}
    tiled = origin.run_tiling is not None
    return InputSpec(int(settings["image_size"]), str(settings.get("resize_mode", "resize")), tiled)


def _tiler(tiling: tuple[int, int] | None, batch: int = FILE_BATCH) -> Tiler | None:
    return None if tiling is None else Tiler(*tiling, batch)


def _export_now(pipe: Pipeline, target: Path, engine: str) -> Path:
    """Write the float export an ONNX engine asked for by name needs, from a torch pipeline at
    the run's own tiling (ConfigError naming why when the model cannot export)."""
    from reconad.inference.onnx_writer import write_onnx

    assert isinstance(pipe.scorer, TorchScorer)
    blocker = pipe.scorer.model.export_blocker()
    if blocker is not None:
        raise ConfigError(f"--engine {engine}: {pipe.model_name} does not export ({blocker}); use --engine torch")
    log.info("exporting %s to ONNX for --engine %s", target, engine)
    return write_onnx(pipe, target, weights_sha256=pipe.origin.model_sha256)


def _file_scorer(engine: str, path: Path, threads: int | None) -> Scorer:
    if engine == "openvino":
        return OpenVinoScorer(path, threads)
    return OnnxScorer(path, threads, engine)


def _retiled(pipe: Pipeline, tiling: tuple[int, int] | None) -> Pipeline:
    """``pipe`` scoring by ``tiling``; the calibration is dropped (with a warning) when the
    scores were calibrated under another."""
    calibrated = pipe.calibrated
    own = pipe.origin.run_tiling
    if tiling != own and calibrated.threshold is not None:
        before = own or (None, None)
        after = tiling or (None, None)
        note = (
            f"the threshold and p-values of this run were calibrated with tile_size={before[0]}, "
            f"overlap={before[1]}; with tile_size={after[0]}, overlap {after[1]} "
            "scores differ in kind, so no label or p-value is given (the verdict is dropped)"
        )
        warnings.warn(note, stacklevel=3)
        calibrated = calibrated.dropped(note)
    tiler = None if tiling is None else Tiler(*tiling, pipe.batch_size)
    spec = replace(pipe.spec, tiled=tiling is not None)
    return replace(pipe, spec=spec, tiler=tiler, calibrated=calibrated)


def rebuild(
    pipe: Pipeline,
    engine: str | None = None,
    tiling: tuple[int | None, int | None] | None = None,
    threads: int | None = None,
) -> Pipeline:
    """A new pipeline of ``pipe``'s model with another engine and/or tiling."""
    origin = pipe.origin
    threads = threads if threads is not None else origin.threads
    if origin.run is not None:
        size, overlap = tiling if tiling is not None else (pipe.tiling or (None, None))
        if tiling is None and pipe.tiling == origin.run_tiling:
            size = overlap = None
        return open_run(origin.run, engine or pipe.engine, size, overlap, threads, origin.device)
    new = pipe
    if tiling is not None:
        settings = origin.config.get("detector") or {}
        new = _retiled(pipe, _requested_tiling(origin.run_tiling, settings, *tiling))
    if engine is not None and check_engine_name(engine) not in ("torch", new.engine):
        new = _detector_engine(new, engine, threads)
    return new


def _detector_engine(pipe: Pipeline, engine: str, threads: int | None) -> Pipeline:
    """A Detector's pipeline on an exported engine: the float export written to a temporary folder."""
    det = pipe.origin.detector
    assert det is not None
    if engine == "onnx-int8":
        raise ConfigError(
            "--engine onnx-int8 runs a run's int8 export: save the model as a run and `reconad export RUN --quantize int8`"
        )
    if engine == "auto":
        return pipe
    if pipe.input_size != det.input_size:
        raise ConfigError(
            f"--engine {engine}: the export takes {det.input_size}-px inputs, not {pipe.input_size}-px tiles"
        )
    scratch = tempfile.TemporaryDirectory(prefix="reconad-export-")
    target = _export_now(from_detector(det), Path(scratch.name) / "model.onnx", engine)
    from reconad.serialization import sha256_of

    origin = replace(pipe.origin, engine_file=target, engine_file_sha256=sha256_of(target), scratch=scratch)
    return replace(pipe, scorer=_file_scorer(engine, target, threads), batch_size=FILE_BATCH, origin=origin)


def with_engine_file(pipe: Pipeline, engine: str, path: Path, threads: int | None) -> Pipeline:
    """``pipe`` on the exported file ``path`` run by ``engine`` (see ``Pipeline.with_engine_file``)."""
    from reconad.serialization import sha256_of

    if check_engine_name(engine) not in ("onnx", "onnx-int8", "openvino"):
        raise ConfigError(f"--engine {engine}: runs no exported file; choose onnx, onnx-int8 or openvino")
    origin = replace(pipe.origin, engine_file=path, engine_file_sha256=sha256_of(path))
    return replace(pipe, scorer=_file_scorer(engine, path, threads), batch_size=FILE_BATCH, origin=origin)
