"""``reconad predict``: a run's pipeline over files, streamed (``reconad.streaming``).

Where the run has a valid ONNX export (engine ``auto``, ``onnx`` or ``onnx-int8``) and
scores whole images, nothing here imports PyTorch: the pipeline is built from the run's
JSON (``reconad.inference.open_run`` checks the model file and the export against their
SHA-256) and images are decoded and resized with numpy (``reconad.imaging.load_array``,
held to ``load_image``'s pixels by a test).  PyTorch loads where the engine or the
tiling needs it.  Predicting never writes an export unless an ONNX engine is asked for
by name (``reconad export RUN`` is the explicit step).
"""

from __future__ import annotations

import os
from pathlib import Path

from reconad.errors import ConfigError, DataError
from reconad.inference import DEFAULT_ENGINE, NotImages, open_run
from reconad.inference.engines import check_engine_name
from reconad.streaming import StreamResult

__all__ = ["predict", "quick_predict"]


def predict(
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
    """Score ``paths`` (files, folders) with the run's pipeline into ``out``: ``scores.csv``
    (score, p-value, label at the threshold), ``errors.csv`` (images that could not be read),
    heat-map overlays (``overlays``: all, flagged or none) and ``predict.json`` (the
    pipeline's identity)."""
    from reconad.imaging import expand_paths
    from reconad.streaming import stream_predict

    check_engine_name(engine)
    try:
        pipe = open_run(run, engine, tile_size, tile_overlap)
    except NotImages as exc:
        if exc.kind != "video":
            raise DataError(f"predict scores images; {exc}") from None
        if engine not in ("auto", "torch"):  # clips are scored by PyTorch only
            raise ConfigError(
                f"--engine {engine}: {exc.model_name} does not export (it scores video clips); use --engine torch"
            ) from None
        _check_video_options(exc.model_name, resume, tile_size, tile_overlap, overlays)
        from reconad.clips import predict_video_run

        return predict_video_run(run, paths, out)
    files = expand_paths(paths)
    return stream_predict(
        pipe, files, Path(out), resume=resume, strict=strict, show_progress=progress, overlays=overlays
    )


def _check_video_options(
    model: str, resume: bool, tile_size: int | None, tile_overlap: int | None, overlays: str = "all"
) -> None:
    """Options the clip scorer has no use for are refused in one line, never dropped."""
    options = (("--resume", resume), ("--tile-size", tile_size), ("--tile-overlap", tile_overlap))
    given = [name for name, value in options if value not in (None, False)]
    given += ["--overlays"] if overlays != "all" else []
    if given:
        raise ConfigError(
            f"{', '.join(given)}: {model} scores whole video clips in one pass, which is neither tiled nor "
            "resumed; give the clips without it"
        )
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError(f"predict of video clips ({model}) is not split across torchrun ranks: run it as one process")


#: the earlier name of ``predict`` (it now always scores: it never steps aside)
quick_predict = predict
