"""Scoring frames as they arrive (``reconad watch``): a folder that grows, or a video file,
through a fitted frame model that carries a state from frame to frame (motion_knn), with
one verdict per frame.

Each frame is read at the model's working size, scored with the frames before it (the
model's motion statistics and its causal filter), and its row is written and flushed at
once: ``OUT/scores.csv`` (frame number, path, score, above the threshold).
``OUT/stream.json`` records what produced the rows (the run, the model file's SHA-256 and
the configuration's, their fingerprint, the source); an ``OUT`` that already holds rows is
refused, so two streams never mix in one file.

A folder is polled every ``poll`` seconds for new frames (in the order of the numbers in
their names); a writer should move each frame into the folder whole (write elsewhere, then
rename).  A frame that cannot be decoded is tried once more at the next poll (it may still
be being written), then listed in ``OUT/errors.csv`` and skipped.  The stream ends after
``max_frames`` frames, after ``idle_exit`` seconds without a new frame, at the end of a
video file, or on Ctrl-C.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reconad.atomic import write_text
from reconad.data.image_io import is_image_file
from reconad.data.video import VIDEO_EXTENSIONS, frames_tensor, iter_video_frames, natural_key, read_frame
from reconad.errors import ConfigError, DataError
from reconad.models.base import scores_streams

__all__ = ["Arrival", "WatchResult", "folder_arrivals", "watch"]

OVERLAYS = ("none", "flagged", "all")


@dataclass
class Arrival:
    """One frame of a source: its path (``video#i`` for a video file) and its pixels, or the
    reason it could not be read."""

    path: str
    frame: np.ndarray | None
    error: str | None = None


@dataclass
class WatchResult:
    scores_csv: Path
    frames: int
    flagged: int
    failed: int
    seconds: float


def folder_arrivals(
    folder: Path,
    size: tuple[int, int],
    channels: int,
    poll: float = 0.2,
    idle_exit: float | None = None,
    stop: Callable[[], bool] = lambda: False,
) -> Iterator[Arrival]:
    """The frames of ``folder`` in name order, new ones as they appear (see the module docstring)."""
    done: set[Path] = set()
    retry: dict[Path, int] = {}
    last_new = time.monotonic()
    while not stop():
        waiting = False  # a frame that failed once waits for the next poll, and so do the later ones
        fresh = sorted(
            (p for p in folder.iterdir() if p.is_file() and is_image_file(p) and p not in done), key=natural_key
        )
        for path in fresh:
            try:
                frame = read_frame(path, size, channels)
            except DataError as exc:
                retry[path] = retry.get(path, 0) + 1
                if retry[path] < 2:
                    waiting = True  # perhaps still being written
                    break
                done.add(path)
                yield Arrival(str(path), None, str(exc))
                continue
            done.add(path)
            last_new = time.monotonic()
            yield Arrival(str(path), frame)
            if stop():
                return
        if not waiting and idle_exit is not None and time.monotonic() - last_new >= idle_exit:
            return
        time.sleep(poll)


def _video_arrivals(path: Path, size: tuple[int, int], channels: int) -> Iterator[Arrival]:
    for i, (frame, _) in enumerate(iter_video_frames(path, size, channels)):
        yield Arrival(f"{path}#{i}", frame)


def _provenance(run: Path, det: Any, source: Path) -> dict[str, Any]:
    """What produced the rows, as a pipeline's identity says it (``reconad.inference.identity``):
    the weights' SHA-256 that the model file records (checked when it was loaded), the
    configuration's, the engine, and their fingerprint."""
    from reconad.inference.identity import Identity, config_sha256, state_sha256
    from reconad.serialization import CONFIG, recorded_sha256

    saved = json.loads((run / "model" / CONFIG).read_text())
    config = config_sha256(saved.get("model_config") or {}, saved.get("detector") or {})
    weights = recorded_sha256(run / "model") or state_sha256(det.model_.trainable_state_dict())
    identity = Identity(det.model_name, weights, config, "torch", None, None)
    return {"produced_by": "reconad watch", "run": str(run), **identity.to_dict(), "source": str(source),
            "threshold": det.threshold_}  # fmt: skip


def _open_out(out: Path, record: dict[str, Any]) -> None:
    if (out / "scores.csv").is_file() and (out / "scores.csv").stat().st_size > 0:
        raise ConfigError(f"{out} already holds scores.csv: give a new --out (a stream is never appended to another)")
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "stream.json", json.dumps(record, indent=2) + "\n")


def _load(run: Path) -> Any:
    from reconad.runs import load_run

    det = load_run(run)[0]  # one-line errors for a missing, unfinished or damaged run
    if not scores_streams(det.model_):
        raise ConfigError(
            f"{run}: model {det.model_name} scores whole clips, not a stream of frames; "
            "`reconad watch` takes a frame model (motion_knn); use `reconad predict` for clips"
        )
    return det


def watch(
    run: str | os.PathLike[str],
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    poll: float = 0.2,
    idle_exit: float | None = None,
    max_frames: int | None = None,
    overlays: str = "none",
    on_frame: Callable[[int, str, float, bool], None] | None = None,
) -> WatchResult:
    """Score the frames of ``source`` (a folder that may grow, or a video file) in order;
    ``on_frame(number, path, score, flagged)`` after each row is written."""
    if overlays not in OVERLAYS:
        raise ConfigError(f"overlays must be one of {', '.join(OVERLAYS)}, got {overlays!r}")
    run, source, out = Path(run), Path(source), Path(out)
    det = _load(run)
    channels, _, h, w = det.model_.config.input_shape
    size = (int(h), int(w))
    if source.is_dir():
        arrivals = folder_arrivals(source, size, int(channels), poll, idle_exit, lambda: False)
    elif source.is_file() and source.suffix.lower() in VIDEO_EXTENSIONS:
        arrivals = _video_arrivals(source, size, int(channels))
    else:
        raise DataError(f"{source}: neither a folder of frames nor a video file ({', '.join(VIDEO_EXTENSIONS)})")
    _open_out(out, _provenance(run, det, source))
    return _score_arrivals(det, arrivals, out, max_frames, overlays, on_frame)


def _score_arrivals(
    det: Any,
    arrivals: Iterator[Arrival],
    out: Path,
    max_frames: int | None,
    overlays: str,
    on_frame: Callable[[int, str, float, bool], None] | None,
) -> WatchResult:
    from reconad.visualize import save_overlay

    model, state, threshold = det.model_, det.model_.stream(), det.threshold_
    n = flagged = failed = 0
    t0 = time.perf_counter()
    with open(out / "scores.csv", "w", newline="") as fh, open(out / "errors.csv", "w", newline="") as eh:
        rows, errors = csv.writer(fh), csv.writer(eh)
        rows.writerow(["frame", "path", "score", "above_threshold"])
        errors.writerow(["path", "reason"])
        for arrival in arrivals:
            if arrival.frame is None:
                errors.writerow([arrival.path, arrival.error])
                eh.flush()
                failed += 1
                continue
            x = frames_tensor(arrival.frame[None])
            scores, maps, state = model.score_sequence(x, state)
            score = float(scores[0])
            flag = threshold is not None and score > threshold
            n += 1
            flagged += int(flag)
            rows.writerow([n, arrival.path, f"{score:.6f}", int(flag)])
            fh.flush()
            if overlays == "all" or (overlays == "flagged" and flag):
                image = np.repeat(arrival.frame, 3 // arrival.frame.shape[-1], axis=-1).astype(np.float32) / 255.0
                save_overlay(out / "overlays" / f"{n:06d}.png", image, maps[0].numpy(), 0.0, float(threshold or 1.0))
            if on_frame is not None:
                on_frame(n, arrival.path, score, flag)
            if max_frames is not None and n >= max_frames:
                break
    return WatchResult(out / "scores.csv", n, flagged, failed, time.perf_counter() - t0)
