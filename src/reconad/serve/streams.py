"""Video streams in the service: a frame model (motion_knn) scores the frames of each named
stream in the order they arrive, with that stream's own state (its last frames and its
filtered score), as ``reconad watch`` does for a folder.

``POST /v1/streams/{model}/{stream}/frames`` takes one frame (multipart file ``frame``) and
answers its number in the stream, its score and whether it is above the run's threshold;
``DELETE /v1/streams/{model}/{stream}`` ends a stream (the next frame starts a new one).
A stream's state lives in the process that scored its frames, so a server with a frame
model runs one worker (``--workers 1``; more are refused at start).  At most
``MAX_STREAMS`` streams are kept per model; beyond, the one idle longest is ended.  Frames
are not stored in the results database.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.errors import ConfigError, DataError
from reconad.serve.config import ServedRun

__all__ = ["MAX_STREAMS", "StreamModel", "is_frame_run", "load_stream_model"]

MAX_STREAMS = 64


def is_frame_run(path: str | Path) -> bool:
    """Whether the run's saved model is a frame model that scores streams (read from its
    config.json, without loading the model)."""
    from reconad.models import MODELS, model_entry
    from reconad.models.base import scores_streams

    config = Path(path) / "model" / "config.json"
    try:
        name = json.loads(config.read_text()).get("model")
    except (OSError, ValueError, AttributeError):
        return False
    return name in MODELS and scores_streams(model_entry(name)[0])


@dataclass
class _Stream:
    state: Any
    frames: int = 0
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class StreamModel:
    """A served frame model and its streams; one lock, since the streams share the model."""

    name: str
    run: Path
    detector: Any
    streams: OrderedDict[str, _Stream] = field(default_factory=OrderedDict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def frame_size(self) -> tuple[int, int, int]:
        channels, _, h, w = self.detector.model_.config.input_shape
        return int(channels), int(h), int(w)

    def score(self, stream: str, data: bytes) -> dict[str, Any]:
        """Score one encoded frame as the next of ``stream``."""
        from reconad.data.video import frames_tensor, read_frame

        channels, h, w = self.frame_size
        frame = read_frame(io.BytesIO(data), (h, w), channels, name="the frame")  # DataError: not an image
        x = frames_tensor(frame[None])
        model, threshold = self.detector.model_, self.detector.threshold_
        with self.lock:
            entry = self.streams.pop(stream, None) or self._new_stream()
            scores, _, entry.state = model.score_sequence(x, entry.state)
            entry.frames += 1
            entry.last_used = time.monotonic()
            self.streams[stream] = entry  # the most recently used last
            number = entry.frames
        score = float(scores[0])
        if not np.isfinite(score):
            raise DataError(f"{self.name}: a non-finite score for frame {number} of stream {stream}")
        above = threshold is not None and score > threshold
        return {"model": self.name, "stream": stream, "frame": number, "score": score,
                "threshold": threshold, "above_threshold": bool(above)}  # fmt: skip

    def _new_stream(self) -> _Stream:
        while len(self.streams) >= MAX_STREAMS:
            self.streams.popitem(last=False)  # the one idle longest
        return _Stream(self.detector.model_.stream())

    def end(self, stream: str) -> bool:
        with self.lock:
            return self.streams.pop(stream, None) is not None


def load_stream_model(run: ServedRun, workers: int, threads: int) -> StreamModel:
    """Load a frame model's run for serving streams; ConfigError with more than one worker."""
    from reconad.detector import Detector

    if workers > 1:
        raise ConfigError(
            f"{run.path}: a frame model keeps each stream's state in one process; serve it with --workers 1"
        )
    torch.set_num_threads(threads)
    return StreamModel(run.name, Path(run.path), Detector.load(Path(run.path) / "model"))
