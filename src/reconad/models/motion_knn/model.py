"""A frame model with motion for video: frozen encoder cells, causal motion statistics, and
the distance of each cell to its nearest normal cell.

Video anomalies such as a cyclist among pedestrians differ in appearance *and* in motion.
Each frame goes through the frozen encoder once; every level is averaged onto one coarse
grid of cells (16 x 16 pixels with EfficientNet-Lite stages 3 and 5), and each cell gets
its appearance features and a few motion numbers: how much its features and its grey
level changed since 1, 2 and 4 frames before (``offsets``).  Training keeps a seeded draw
of the training frames' cells as the normal bank.  A test cell's anomaly is its distance
to the nearest bank cell; the frame's map is those distances smoothed by a small box
filter (zero borders: a cell at the edge is not made more anomalous than it is); the frame
score is the map's largest value, followed by a causal exponential filter over time.
Every step looks only at the current and earlier frames, so a live stream can run it
frame by frame (:meth:`MotionKNN.stream`), with the same scores as a whole clip.

Before distances are taken the appearance part and the motion part are each divided by
their mean spread over the training cells, so that ``motion_weight`` means the same on
any encoder and frame size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from reconad.backbones import FeaturePyramid, build_backbone
from reconad.data.records import Batch, ClipBatch, collate_clips
from reconad.data.video import frames_tensor, windows_of
from reconad.engine import progress as bars
from reconad.engine.step import OptimizerSpec
from reconad.errors import DataError
from reconad.models.base import AnomalyModel, ScoreOutput
from reconad.models.motion_knn.config import MotionKNNConfig
from reconad.models.motion_knn.features import (
    causal_ema,
    flat_cells,
    frame_cells,
    motion_stats,
    nearest_distances,
)

#: frames encoded at once
CHUNK = 16
#: EfficientNet-Lite stages at strides 8 and 16 (as PatchCore's mid levels)
DEFAULT_LAYERS = [3, 5]


@dataclass
class StreamState:
    """What a stream carries from one frame to the next: the last frames' cells and grey
    levels (as far back as the largest offset) and the filtered score."""

    cells: torch.Tensor | None = None
    grey: torch.Tensor | None = None
    last: float | None = None


class CellSet(Dataset):
    """Appearance (N, D) and motion (N, M) rows of the training cells kept for the bank."""

    def __init__(self, appearance: torch.Tensor, motion: torch.Tensor) -> None:
        self.appearance, self.motion = appearance, motion

    def __len__(self) -> int:
        return int(self.appearance.shape[0])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.appearance[i], self.motion[i]


class MotionKNN(AnomalyModel):
    name = "motion_knn"
    input_kinds: ClassVar[tuple[str, ...]] = ("video",)
    frozen_prefixes = ("encoder.",)
    train_defaults: ClassVar[dict[str, Any]] = {"epochs": 1, "patience": None}
    default_monitor = "none"
    #: the video benchmark's clip settings for it: the frames near their own size (UCSD
    #: Ped2's 240 x 360, to multiples of 16) so that small objects keep their cells
    video_clip_defaults: ClassVar[dict[str, Any]] = {"frame_size": [256, 384], "clip_length": 8, "train_stride": 4}

    config: MotionKNNConfig
    encoder: FeaturePyramid
    bank: torch.Tensor
    scales: torch.Tensor

    def __init__(self, config: MotionKNNConfig | None = None, **kwargs: Any) -> None:
        super().__init__()
        self.config = config or MotionKNNConfig(**kwargs)
        cfg = self.config
        layers = cfg.layers if cfg.layers is not None else DEFAULT_LAYERS
        self.encoder = build_backbone(cfg.backbone, layers=layers, weights=cfg.backbone_weights)
        self.encoder.eval()
        dim = sum(self.encoder.channels) + self.motion_dim
        self.register_buffer("bank", torch.zeros(0, dim))
        self.register_buffer("scales", torch.ones(2))  # appearance, motion: mean spread over training cells

    @property
    def motion_dim(self) -> int:
        return len(self.config.offsets) * (len(self.encoder.channels) + 1)

    # ------------------------------------------------------------------ training
    def optimizer_specs(self) -> dict[str, OptimizerSpec]:
        return {}  # nothing is trained by gradients: the engine runs no epochs

    def collate_fn(self) -> Callable[[list[Any]], Batch]:
        return collate_clips

    def prepare_data(self, dataset: Dataset, device: torch.device, progress: bool = True) -> Dataset:
        self._show_progress = progress  # the frames are encoded once, at the end (no epoch runs)
        return dataset

    @torch.inference_mode()
    def training_cells(self, dataset: Dataset, device: torch.device) -> CellSet:
        """Encode every frame the windows cover (with the frames before them, for motion)
        once; keep a seeded draw of their cells, evenly over the frames."""
        windows, chosen = windows_of(dataset)
        covered: dict[int, set[int]] = {}
        for i in chosen:
            ci, start = windows.windows[i]
            covered.setdefault(ci, set()).update(range(start, min(start + windows.length, len(windows.clips[ci]))))
        n_frames = sum(len(v) for v in covered.values())
        per_frame = max(1, math.ceil(2 * self.config.bank_size / max(n_frames, 1)))
        gen = torch.Generator().manual_seed(self.config.bank_seed)
        apps, mots = [], []
        show = getattr(self, "_show_progress", True)
        bar = bars.progress(iter(()), enabled=show, total=n_frames, desc="frame features", unit="frame")
        try:
            for ci in sorted(covered):
                keep = torch.tensor(sorted(covered[ci]))
                app, mot = self._sequence_features(_clip_tensor(windows.clips[ci], int(keep.max()) + 1, device))
                for a, m in zip(app[keep], mot[keep]):
                    a, m = flat_cells(a[None]), flat_cells(m[None])
                    pick = torch.randperm(len(a), generator=gen)[:per_frame]
                    apps.append(a[pick].cpu())
                    mots.append(m[pick].cpu())
                bar.update(len(keep))
        finally:
            bar.close()
        if not apps:
            raise DataError("motion_knn found no training frames")
        return CellSet(torch.cat(apps), torch.cat(mots))

    @torch.no_grad()
    def on_fit_end(self, train_data: Dataset, val_data: Dataset | None, device: torch.device) -> None:
        """The scales from every kept cell, then the bank: a seeded draw of ``bank_size`` cells."""
        cells = train_data if isinstance(train_data, CellSet) else self.training_cells(train_data, device)
        app, mot = cells.appearance.float(), cells.motion.float()
        spread = torch.stack([app.std(0).mean(), mot.std(0).mean()]).clamp_min(1e-8)
        self.scales = spread.to(self.scales.device)
        gen = torch.Generator().manual_seed(self.config.bank_seed + 1)
        pick = torch.randperm(len(app), generator=gen)[: self.config.bank_size]
        self.bank = self._join(app[pick], mot[pick]).to(self.scales.device)

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "bank" in state:  # its size depends on the training data
            self.bank = torch.empty_like(state["bank"], device=self.scales.device)
        super().load_trainable_state_dict(state)

    # ------------------------------------------------------------------ features
    def _encode(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [frame_cells(self.encoder, chunk) for chunk in frames.split(CHUNK)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def _sequence_features(
        self, frames: torch.Tensor, state: StreamState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Appearance (T, D, h, w) and motion (T, M, h, w) of frames (T, C, H, W), after the
        history in ``state`` (updated in place to end with these frames)."""
        cells, grey = self._encode(frames)
        first = 0
        if state is not None and state.cells is not None and state.grey is not None:
            first = int(state.cells.shape[0])
            cells, grey = torch.cat([state.cells, cells]), torch.cat([state.grey, grey])
        motion = motion_stats(cells, grey, self.config.offsets, list(self.encoder.channels), first)
        if state is not None:
            keep = self.config.history
            state.cells, state.grey = cells[-keep:], grey[-keep:]
        return cells[first:], motion

    def _join(self, appearance: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        a = appearance / self.scales[0]
        return torch.cat([a, (self.config.motion_weight / self.scales[1]) * motion], 1)

    # ------------------------------------------------------------------- scoring
    def _cell_maps(self, appearance: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
        """(T, h, w) smoothed nearest-cell distances."""
        if self.bank.shape[0] == 0:
            raise DataError("this motion_knn model has an empty bank: fit() it first")
        t, _, h, w = appearance.shape
        dist = nearest_distances(self._join(flat_cells(appearance), flat_cells(motion)), self.bank)
        grid = dist.view(t, 1, h, w)
        k = self.config.smooth
        if k > 1:
            grid = F.avg_pool2d(grid, k, stride=1, padding=k // 2, count_include_pad=True)
        return grid[:, 0]

    @torch.inference_mode()
    def score_sequence(
        self, frames: torch.Tensor, state: StreamState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, StreamState]:
        """Frames (T, C, H, W) in [0, 1], in order -> filtered frame scores (T,), maps (T, H, W)
        and the state to go on with; ``state`` from an earlier call continues that stream."""
        state = state if state is not None else StreamState()
        appearance, motion = self._sequence_features(frames.to(self.scales.device), state)
        grid = self._cell_maps(appearance, motion)
        raw = grid.flatten(1).amax(1).cpu()
        scores = causal_ema(raw, self.config.ema, state.last)
        state.last = float(scores[-1]) if len(scores) else state.last
        size = (int(frames.shape[-2]), int(frames.shape[-1]))
        maps = F.interpolate(grid[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
        return scores, maps.cpu(), state

    def stream(self) -> StreamState:
        """A new stream's state: pass it to :meth:`score_sequence` with each new frame (or run)."""
        return StreamState()

    def predict_step(self, batch: Batch) -> ScoreOutput:
        """Windows (B, T, C, H, W) -> each window's score (its last frame's, with the frames
        before it in the window as history) and per-frame maps (B, T, H, W)."""
        if not isinstance(batch, ClipBatch):
            raise TypeError(f"motion_knn scores video clips, got {type(batch).__name__}")
        scores, maps = [], []
        for frames in batch.frames:
            s, m, _ = self.score_sequence(frames)
            scores.append(s[-1])
            maps.append(m)
        return ScoreOutput(torch.stack(scores), torch.stack(maps))

    def export_blocker(self) -> str | None:
        return "motion_knn scores video frame by frame with a state; export takes image models"


def _clip_tensor(clip: Any, n: int, device: torch.device) -> torch.Tensor:
    """The first ``n`` frames of a ``Clip`` as (n, C, H, W) floats in [0, 1]."""
    frames = np.asarray(clip.frames[:n])
    return frames_tensor(frames).to(device)
