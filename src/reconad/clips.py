"""Scoring video clips with a fitted 3-D model (ae, memae): per-frame errors and maps (the
mean over the windows covering each frame), or with a frame model that scores a clip in
order as one stream (motion_knn), per-clip or global normalisation, and
``reconad predict`` on clip folders / video files (``scores.csv`` and one overlay per
frame).  The video benchmark (``reconad.protocols.video``) scores through these too.
"""

from __future__ import annotations

import csv
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from reconad.atomic import atomic_open
from reconad.data.records import collate_clips
from reconad.data.video import Clip, ClipWindows, find_clips, frames_tensor, load_clip
from reconad.errors import ConfigError, DataError
from reconad.models.base import AnomalyModel, scores_streams

if TYPE_CHECKING:
    from reconad.detector import Detector

__all__ = [
    "NORMALISATIONS",
    "ClipScores",
    "model_device",
    "normalise",
    "predict_clips",
    "predict_video_run",
    "score_clips",
]

NORMALISATIONS: tuple[str, ...] = ("clip", "global")


@dataclass
class ClipScores:
    """One test clip after scoring: per-frame errors (T,), error maps (T, H, W), ground truth;
    per window: its first frame, its mean squared error and
    its mean residual norm (the root of each pixel's squared error summed over channels: the
    official MemAE evaluation's window score)."""

    clip: Clip
    frame_scores: np.ndarray
    maps: np.ndarray
    window_starts: np.ndarray | None = None
    window_scores: np.ndarray | None = None
    window_norms: np.ndarray | None = None


@torch.inference_mode()
def score_clips(
    model: AnomalyModel, clips: list[Clip], length: int, stride: int, device: torch.device, batch_size: int = 8
) -> tuple[list[ClipScores], float]:
    """Per-frame errors and maps of every clip (mean over the windows covering each frame),
    and the seconds the scoring pass took."""
    model.eval()
    if scores_streams(model):  # a causal frame model: each clip as one stream
        return _score_streams(model, clips, device)
    windows = ClipWindows(clips, length, stride)
    _, h, w = windows.frame_shape
    sums = [np.zeros((len(c), h, w), np.float64) for c in clips]
    counts = [np.zeros(len(c), np.int64) for c in clips]
    per_window: list[list[tuple[int, float, float]]] = [[] for _ in clips]
    t0 = time.perf_counter()
    seen = 0  # windows come in order: window seen + b of the batch says its clip (names may repeat)
    for batch in DataLoader(windows, batch_size=batch_size, shuffle=False, collate_fn=collate_clips):
        out = model.predict_step(batch.to(device))
        if out.maps is None:
            raise DataError(f"{model.name} gave no per-frame maps for clips")
        maps = out.maps.float().cpu().numpy()
        # maps are the squared error averaged over channels: C * map is its sum over them
        norms = np.sqrt(maps * batch.frames.shape[2]).reshape(len(maps), -1).mean(axis=1)
        assert batch.index is not None
        owners = windows.windows[seen : seen + len(batch.clip)]
        seen += len(batch.clip)
        for b, (ci, start) in enumerate(owners):
            idx, first = np.unique(batch.index[b].numpy(), return_index=True)  # padded windows repeat a frame
            np.add.at(sums[ci], idx, maps[b][first])
            np.add.at(counts[ci], idx, 1)
            per_window[ci].append((start, float(maps[b].mean()), float(norms[b])))
    seconds = time.perf_counter() - t0
    out_scores = []
    for clip, s, n, wins in zip(clips, sums, counts, per_window):
        m = (s / np.maximum(n, 1)[:, None, None]).astype(np.float32)
        starts, sq, nrm = (np.asarray(v) for v in zip(*wins))
        frame = m.reshape(len(clip), -1).mean(axis=1).astype(np.float64)
        out_scores.append(ClipScores(clip, frame, m, starts.astype(np.int64), sq, nrm))
    return out_scores, seconds


def _score_streams(model: Any, clips: list[Clip], device: torch.device) -> tuple[list[ClipScores], float]:
    """Per-frame scores and maps of a model that scores a clip frame by frame in order
    (``score_sequence``: motion_knn); no windows, so no window scores."""
    t0 = time.perf_counter()
    out = []
    for clip in clips:
        frames = frames_tensor(clip.frames)
        scores, maps, _ = model.score_sequence(frames.to(device))
        out.append(ClipScores(clip, scores.double().numpy(), maps.float().numpy()))
    return out, time.perf_counter() - t0


def model_device(model: torch.nn.Module) -> torch.device:
    """Where a model's tensors live (CPU for a model without any)."""
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


def normalise(scores: list[np.ndarray], mode: str) -> list[np.ndarray]:
    """Per-clip (``clip``) or one global (``global``) min-max scaling of per-frame scores."""
    if mode not in NORMALISATIONS:
        raise ConfigError(f"unknown normalisation {mode!r}; choose one of {', '.join(NORMALISATIONS)}")

    def scale(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
        return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)

    if mode == "clip":
        return [scale(s, float(s.min()), float(s.max())) for s in scores]
    allv = np.concatenate(scores)
    return [scale(s, float(allv.min()), float(allv.max())) for s in scores]


def predict_clips(det: Detector, paths: list[str], out: str | os.PathLike[str], stride: int | None = None) -> Path:
    """Score clip folders / video files with a fitted 3-D model: ``scores.csv`` (clip, frame,
    path, raw score, per-clip normalised score, above the threshold) and one overlay per frame."""
    from reconad.visualize import save_overlay

    model: AnomalyModel = det.model_
    c, t, h, w = model.config.input_shape
    found = find_clips(paths)
    clips = [load_clip(p, (h, w), c, name=n) for p, n in zip(found, clip_names(found))]
    scored, _ = score_clips(model, clips, t, stride or max(1, t // 2), model_device(model))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vmax = float(det.threshold_) if det.threshold_ else float(max(s.frame_scores.max() for s in scored))
    with atomic_open(out / "scores.csv", "w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(["clip", "frame", "path", "score", "score_clip_norm", "above_threshold"])
        for sc, norm in zip(scored, normalise([s.frame_scores for s in scored], "clip")):
            for i, (score, nv) in enumerate(zip(sc.frame_scores, norm)):
                flag = int(det.threshold_ is not None and score > det.threshold_)
                wr.writerow([sc.clip.name, i + 1, sc.clip.paths[i], f"{score:.6f}", f"{nv:.6f}", flag])
                img = np.repeat(sc.clip.frames[i], 3 // c, axis=-1).astype(np.float32) / 255.0
                save_overlay(out / sc.clip.name / f"{i + 1:04d}.png", img, sc.maps[i], 0.0, vmax)
    return out / "scores.csv"


def clip_names(paths: list[Path]) -> list[str]:
    """A name per clip, unique: each clip's own name (file stem or folder name) where no other
    clip has it, else its real path below the folder the clips share (``a/01``, ``b/01``),
    so two clips of one name keep their own rows and overlay folders."""
    stems = [p.stem if p.is_file() else p.name for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    real = [Path(os.path.realpath(p)) for p in paths]
    common = Path(os.path.commonpath(real)) if len(real) > 1 else real[0].parent
    names = [(r.with_suffix("") if r.is_file() else r).relative_to(common).as_posix() for r in real]
    if len(set(names)) != len(names):  # the same clip given twice
        dup = next(str(p) for p, n in zip(paths, names) if names.count(n) > 1)
        raise DataError(f"clip {dup} is given more than once")
    return names


def predict_video_run(run: str | os.PathLike, paths: list[str], out: str | os.PathLike) -> Any:
    """``reconad predict`` for a run of a video model: clip folders / video files scored into
    ``OUT/scores.csv`` with one overlay per frame (a ``reconad.streaming.StreamResult``)."""
    from reconad.detector import Detector
    from reconad.streaming import StreamResult, complete_rows

    det = Detector.load(Path(run) / "model")
    t0 = time.perf_counter()
    path = predict_clips(det, paths, out)
    frames = len(complete_rows(path))
    return StreamResult(path, Path(out) / "errors.csv", frames, 0, 0, time.perf_counter() - t0)
