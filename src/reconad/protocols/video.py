"""``video``: frame-level anomaly detection on clips in the UCSD layout (UCSD Ped2).

``reconad benchmark video --dataset ucsd-ped2 --root ../shared/data/ucsd-ped2
--model memae`` (``--model memae,ae`` runs both on the same frames):

* every clip of ``training/frames`` (normal only) is cut into windows of ``clip_length``
  frames every ``train_stride`` frames; the model (its 3-D variant, picked by the clip
  input) trains on them through the Detector, which holds out 10% of the windows for
  early stopping and its threshold;
* every test clip is cut into windows every ``test_stride`` frames (the last window ends on
  the last frame); a frame's reconstruction error, and its error map, is the mean over the
  windows that cover it;
* the frame score is normalised per test clip (min-max: the regularity score
  ``1 - s`` of the video papers, here kept as an anomaly score ``s``), which uses the test
  clip itself, and globally (one min-max over all test frames, i.e. the raw errors as far
  as an AUROC can tell); both are reported, ``normalisation`` says which comes first;
* metrics: frame-level AUROC over all test frames (micro), per-clip AUROC where a clip
  has both classes, pixel AUROC of the error maps against the masks (at the working
  resolution), training time, and test frames per second of the scoring pass.

Each fitted model is saved to ``OUT/<model>/model``, so ``reconad predict OUT/<model>
CLIP_DIR --out DIR`` (``reconad.clips.predict_clips``, which also scores the test
clips here) writes per-frame scores (CSV) and heat-map overlays for clip folders or video
files.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.clips import NORMALISATIONS, ClipScores, model_device, normalise, predict_clips, score_clips
from reconad.data.video import Clip, ClipWindows, load_ucsd_split
from reconad.metrics import image_auroc, pixel_auroc
from reconad.protocols.results import Published, Results, markdown_table, write_results
from reconad.protocols.settings import VIDEO_DATASETS, VideoSettings
from reconad.protocols.tabular import torch_threads

log = logging.getLogger("reconad")

__all__ = [
    "ClipScores",
    "DATASETS",
    "NORMALISATIONS",
    "model_device",
    "normalise",
    "predict_clips",
    "run",
    "score_clips",
]

DATASETS: tuple[str, ...] = VIDEO_DATASETS
#: engine / model settings for 2 CPU cores (any --set wins): 64x96 frames, width 8 (channels
#: 24, 32, 64, 64); about 25 minutes of training on UCSD Ped2 with one thread.
CPU_OPTIONS: dict[str, Any] = {"width": 8, "epochs": 25, "batch_size": 8, "lr": 1e-3, "patience": 5}
PUBLISHED = [
    Published(
        "MemAE",
        "Gong et al., ICCV 2019",
        0.941,
        "frame-level AUROC, UCSD Ped2",
        note="256x256 grey frames, 16-frame clips, memory of 2000 slots, per-clip normalised regularity score; GPU",
    ),
]


def frame_metrics(scored: list[ClipScores], mode: str) -> dict[str, Any]:
    """Micro frame AUROC over all labelled frames, per-clip AUROCs where both classes occur."""
    labelled = [c for c in scored if c.clip.labels is not None]
    if not labelled:
        return {"frame_auroc": float("nan"), "per_clip_auroc": {}, "mean_clip_auroc": float("nan")}
    norm = normalise([c.frame_scores for c in labelled], mode)
    y = np.concatenate([c.clip.labels for c in labelled])
    per_clip = {}
    for c, s in zip(labelled, norm):
        lab = c.clip.labels
        if lab is not None and 0 < lab.sum() < len(lab):
            per_clip[c.clip.name] = image_auroc(lab, s)
    mean_clip = float(np.mean(list(per_clip.values()))) if per_clip else float("nan")
    return {
        "frame_auroc": image_auroc(y, np.concatenate(norm)),
        "per_clip_auroc": per_clip,
        "mean_clip_auroc": mean_clip,
    }


def centre_metrics(scored: list[ClipScores], length: int) -> dict[str, float]:
    """The official MemAE evaluation: each whole window's score belongs to its centre frame
    (start + length // 2; the labels of the first length // 2 and last length // 2 - 1
    frames of a clip drop out), min-max normalised per clip, one AUROC over all of them.
    ``frame_auroc_centre`` scores a window by its mean residual norm (the official code's),
    ``frame_auroc_centre_sq`` by its mean squared residual.  At test stride 1 every
    window is there, as in the official code; at a larger stride only their centres count."""
    ys: list[np.ndarray] = []
    norms: list[np.ndarray] = []
    squares: list[np.ndarray] = []
    for c in scored:
        if c.clip.labels is None or c.window_starts is None or c.window_scores is None or c.window_norms is None:
            continue
        whole = c.window_starts + length <= len(c.clip)
        if not whole.any():
            continue
        ys.append(c.clip.labels[c.window_starts[whole] + length // 2])
        norms.append(c.window_norms[whole])
        squares.append(c.window_scores[whole])
    if not ys:
        return {"frame_auroc_centre": float("nan"), "frame_auroc_centre_sq": float("nan")}
    y = np.concatenate(ys)
    return {
        "frame_auroc_centre": image_auroc(y, np.concatenate(normalise(norms, "clip"))),
        "frame_auroc_centre_sq": image_auroc(y, np.concatenate(normalise(squares, "clip"))),
    }


def undefined_video_metrics(row: dict[str, Any], scored: list[ClipScores]) -> dict[str, str]:
    """Why each metric of ``row`` that is not a finite number is undefined, by key."""
    labels = [c.clip.labels for c in scored if c.clip.labels is not None]
    y = np.concatenate(labels) if labels else np.zeros(0)
    if not labels:
        frames = "no test clip has frame labels"
    else:
        frames = f"the test frames hold one class only ({'all anomalous' if y.all() else 'no anomalous frame'})"
    masks = [c.clip.masks for c in scored if c.clip.masks is not None]
    if not masks:
        pixels = "no test clip has pixel masks"
    else:
        pixels = "the masks hold one class of pixel only"
    clips = "no test clip holds both normal and anomalous frames"
    streams = bool(scored) and all(c.window_starts is None for c in scored)
    reasons = {}
    for key, value in row.items():
        if not isinstance(value, float) or math.isfinite(value):
            continue
        why = pixels if key.startswith("pixel") else clips if key.startswith("mean_clip") else frames
        if streams and key.startswith("frame_auroc_centre"):
            why = "the model scores each clip as a stream, with no windows"
        reasons[key] = f"{key} undefined: {why}"
    return reasons


def mask_metric(scored: list[ClipScores]) -> float:
    """Pixel AUROC of the error maps of the clips with masks (nan without masks)."""
    with_masks = [c for c in scored if c.clip.masks is not None]
    if not with_masks:
        return float("nan")
    masks = np.concatenate([c.clip.masks for c in with_masks])
    maps = np.concatenate([c.maps for c in with_masks])
    return pixel_auroc(masks, maps)


def model_options(s: VideoSettings, model: str) -> dict[str, Any]:
    """What the Detector is given for ``model``: the preset recipe's model and engine options
    (else ``CPU_OPTIONS`` for the 3-D models; a frame model such as motion_knn has its own
    defaults), then the user's options, which win (and are recorded: ``preset_departures``)."""
    from reconad.models import model_entry
    from reconad.models.base import scores_streams

    recipe = s.recipe()
    frame_model = scores_streams(model_entry(model)[0])
    base = recipe.training if recipe is not None else {} if frame_model else CPU_OPTIONS
    return {**base, **s.options}


def _fit(s: VideoSettings, model: str, train: list[Clip]) -> Any:
    from reconad.detector import Detector

    det = Detector(model, **model_options(s, model))
    assert s.clip_length is not None and s.train_stride is not None  # filled when the settings were made
    det.fit(ClipWindows(train, s.clip_length, s.train_stride))
    return det


def _evaluate(s: VideoSettings, det: Any, test: list[Clip]) -> tuple[dict[str, Any], list[ClipScores]]:
    assert s.clip_length is not None and s.test_stride is not None  # filled when the settings were made
    scored, seconds = score_clips(det.model_, test, s.clip_length, s.test_stride, model_device(det.model_))
    n_frames = sum(len(c) for c in test)
    row: dict[str, Any] = {"model": det.model_name}
    for mode in NORMALISATIONS:
        m = frame_metrics(scored, mode)
        row[f"frame_auroc_{mode}"] = m["frame_auroc"]
        row[f"mean_clip_auroc_{mode}"] = m["mean_clip_auroc"]
        row[f"per_clip_auroc_{mode}"] = m["per_clip_auroc"]
    row["frame_auroc"] = row[f"frame_auroc_{s.normalisation}"]
    row.update(centre_metrics(scored, s.clip_length))
    row["pixel_auroc"] = mask_metric(scored)
    undefined = undefined_video_metrics(row, scored)
    if undefined:  # written as null, with the reason beside them
        row["undefined"] = undefined
    h = det.history_
    row.update(
        train_seconds=h.seconds if h is not None else float("nan"),
        epochs_run=h.epochs_run if h is not None else 0,
        test_frames=n_frames,
        score_seconds=seconds,
        frames_per_second=n_frames / max(seconds, 1e-9),
        threads=torch.get_num_threads(),
    )
    return row, scored


def _write_overlays(out: Path, model: str, scored: list[ClipScores], vmax: float) -> None:
    from reconad.visualize import save_overlay

    for c in scored:
        t = int(np.argmax(c.frame_scores))
        img = np.repeat(c.clip.frames[t], 3 // c.clip.frames.shape[-1], axis=-1).astype(np.float32) / 255.0
        mask = None if c.clip.masks is None else c.clip.masks[t]
        save_overlay(out / "heatmaps" / model / f"{c.clip.name}_{t + 1:03d}.png", img, c.maps[t], 0.0, vmax, mask=mask)


def _shown(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def _body(s: VideoSettings, rows: list[dict[str, Any]]) -> str:
    keys = ["model", "frame_auroc_clip", "frame_auroc_global", "frame_auroc_centre", "mean_clip_auroc_clip"]
    keys += ["pixel_auroc"]
    keys += ["train_seconds", "frames_per_second", "epochs_run"]
    assert s.frame_size is not None
    preset = s.options.get("preset")
    given = "; ".join(
        f"{k} {_shown(v['given'])} (the preset's {_shown(v['preset'])})" for k, v in s.preset_departures.items()
    )
    lines = [f"Preset {preset}" + (f", with the user's departures: {given}." if given else " as it is."), ""]
    lines = lines if preset is not None else []
    lines += [
        f"Frames {s.frame_size[0]}x{s.frame_size[1]} ({'grey' if s.channels == 1 else 'RGB'}), clips of "
        f"{s.clip_length} frames; training windows every {s.train_stride} frames, test windows every "
        f"{s.test_stride} (a frame's score: the mean over the windows covering it).",
        "",
        "frame_auroc_clip: scores min-max normalised per test clip (the regularity score of the video "
        "papers; it uses the test clip itself). frame_auroc_global: one normalisation over all test "
        "frames. Micro AUROC over all test frames; per-clip AUROCs in results.json. frame_auroc_centre: "
        "the official MemAE evaluation (each whole window's mean residual norm at its centre frame, "
        "min-max per clip; at test stride 1 as there).",
        "",
        markdown_table(rows, keys),
        "",
    ]
    return "\n".join(lines)


def _data_text(s: VideoSettings, train: list[Clip], test: list[Clip]) -> str:
    n_anom = sum(int(c.labels.sum()) for c in test if c.labels is not None)
    masks = sum(1 for c in test if c.masks is not None)
    return (
        f"{s.dataset} at {s.root}: {len(train)} training clips ({sum(map(len, train))} frames, normal), "
        f"{len(test)} test clips ({sum(map(len, test))} frames, {n_anom} anomalous by the '{s.labels}' labels; "
        f"pixel masks for {masks} clips)"
    )


def run(settings: VideoSettings) -> dict[str, Any]:
    """Train each model on the training clips, score the test clips; results.md/json."""
    s = settings  # checked when it was made (VideoSettings.check)
    assert s.frame_size is not None and s.root is not None and s.channels is not None
    size = (int(s.frame_size[0]), int(s.frame_size[1]))
    models = s.model_names()
    threads = torch.get_num_threads() if s.threads is None else int(s.threads)
    with torch_threads(threads):
        t0 = time.perf_counter()
        train = load_ucsd_split(s.root, "training", size, s.channels)
        test = load_ucsd_split(s.root, "testing", size, s.channels, labels=s.labels)
        read_seconds = time.perf_counter() - t0
        if s.echo:
            print(f"read {len(train)} training and {len(test)} test clips in {read_seconds:.0f}s", flush=True)
            for key, v in s.preset_departures.items():
                preset = s.options.get("preset")
                print(
                    f"preset {preset}: {key} {_shown(v['given'])} given, the preset's {_shown(v['preset'])}", flush=True
                )
        rows: list[dict[str, Any]] = []
        doc: dict[str, Any] = {}
        for name in models:
            det = _fit(s, name, train)
            row, scored = _evaluate(s, det, test)
            rows.append(row)
            det.save(Path(s.out) / name / "model")  # a run folder: reconad predict OUT/NAME CLIP_DIR
            _write_overlays(Path(s.out), name, scored, float(det.threshold_ or 1.0))
            if s.echo:
                print(
                    f"{name}: frame AUROC {row['frame_auroc_clip']:.4f} (per-clip norm), "
                    f"{row['frame_auroc_global']:.4f} (global), pixel {row['pixel_auroc']:.4f}, "
                    f"trained in {row['train_seconds']:.0f}s, {row['frames_per_second']:.0f} frames/s",
                    flush=True,
                )
            payload = {"rows": rows, "read_seconds": read_seconds, "normalisations": list(NORMALISATIONS)}
            payload["normalisation_default"] = s.normalisation
            settings_doc = {k: v for k, v in asdict(s).items() if k not in ("command", "echo")}
            settings_doc["model_options"] = {m: model_options(s, m) for m in models}
            recipe = s.recipe()
            if recipe is not None:  # the whole recipe the preset stands for, beside what was run
                settings_doc["preset_recipe"] = asdict(recipe)
            doc = write_results(
                s.out,
                Results("video", "Video anomaly detection", _data_text(s, train, test), s.command, settings_doc,
                        payload, _body(s, rows), PUBLISHED,
                        "The paper's figure is at 256x256 on a GPU; ours at the working resolution above."),
            )  # fmt: skip
    if s.echo:
        print((Path(s.out) / "results.md").read_text())
    return doc
