"""Video clips: frame folders (the UCSD layout and plain ones), video files, frame labels, masks.

A *clip* is one video: a folder of frames (``.jpg``/``.png``/``.tif``/...; sorted by the
number in their names) or a video file read through PyAV (``pip install av``, optional).
Frames are read as 8-bit grey (``channels=1``, the UCSD sets) or RGB (``channels=3``)
and resized to the working ``size`` (H, W) with antialiasing; every frame of a folder
must have the same size.

The UCSD layout (``root/training/frames/NN/*.jpg``, ``root/testing/frames/NN/*.jpg``):

* frame labels from the official list ``testing/<name>.m`` (``TestVideoFile{end+1}.gt_frame
  = [a:b];`` one entry per test clip in clip order, 1-based inclusive ranges, several
  ranges or single frames allowed), from ``ped2.mat`` (``gt``: one (2, k) array of
  start/end rows per clip) or from a per-clip CSV (``<clip folder>.csv`` beside the folder
  or ``labels.csv`` inside it: columns ``frame`` (1-based) and ``label`` (0/1));
* pixel masks from ``testing/pixel_masks/NNN/*.png`` (folder number = clip number,
  255 = anomalous, thresholded at 128), one per frame.

``ClipWindows`` cuts clips into windows of ``length`` frames every ``stride`` frames
(the last window ends on the last frame, so every frame is covered) and yields
``ClipItem`` records (frames (T, C, H, W) float in [0, 1]).  ``write_moving_shapes``
writes a small synthetic data set in the UCSD layout for tests.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, Subset

from reconad.data.image_io import is_image_file
from reconad.data.records import ClipItem
from reconad.errors import ConfigError, DataError

__all__ = [
    "VIDEO_EXTENSIONS",
    "Clip",
    "ClipWindows",
    "LABEL_SOURCES",
    "find_clips",
    "frame_files",
    "is_clip_dataset",
    "load_clip",
    "load_ucsd_split",
    "parse_gt_frame_list",
    "read_gt_mat",
    "write_moving_shapes",
]

PathLike = str | os.PathLike[str]
VIDEO_EXTENSIONS: tuple[str, ...] = (".avi", ".mp4", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")
#: where test-frame labels come from: the official ``.m`` list, ``ped2.mat``, per-clip CSVs
LABEL_SOURCES: tuple[str, ...] = ("m", "mat", "csv", "none")
_NUMBER = re.compile(r"(\d+)")


@dataclass
class Clip:
    """One video at the working size: frames (T, H, W, C) uint8, one path per frame,
    per-frame labels (T,) and masks (T, H, W) bool where known."""

    name: str
    frames: np.ndarray
    paths: list[str]
    labels: np.ndarray | None = None
    masks: np.ndarray | None = None
    #: (H, W) of the frames as read, before resizing (None where unknown)
    native_size: tuple[int, int] | None = None

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def natural_key(path: Path) -> tuple[Any, ...]:
    parts = _NUMBER.split(path.stem)
    return tuple(int(p) if p.isdigit() else p for p in parts) + (path.suffix,)


def frame_files(folder: PathLike) -> list[Path]:
    """Image files directly in ``folder``, in the order of the numbers in their names."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"clip folder not found: {folder}")
    files = sorted((p for p in folder.iterdir() if p.is_file() and is_image_file(p)), key=natural_key)
    if not files:
        raise DataError(f"{folder}: no frames (image files) in the clip folder")
    return files


#: what Pillow raises for a file it cannot decode (a broken PNG chunk is a SyntaxError there)
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError)


def _check_same_size(files: Sequence[Path]) -> tuple[int, int]:
    """(H, W) shared by every frame; DataError naming the first frame of another size."""
    sizes = []
    for f in files:
        try:
            with Image.open(f) as im:
                sizes.append(im.size)
        except _UNREADABLE as exc:
            raise DataError(f"{f}: not a readable image ({exc})") from None
        if sizes[-1] != sizes[0]:
            (w0, h0), (w, h) = sizes[0], sizes[-1]
            raise DataError(f"{f}: frame is {w}x{h}, but {files[0].name} in the same clip is {w0}x{h0}")
    w, h = sizes[0]
    return h, w


def _to_array(im: Image.Image, size: tuple[int, int], channels: int) -> np.ndarray:
    im = im.convert("L" if channels == 1 else "RGB")
    if im.size != (size[1], size[0]):
        im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    arr = np.asarray(im, dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def _check_channels(channels: int) -> None:
    if channels not in (1, 3):
        raise ConfigError(f"channels must be 1 (grey) or 3 (RGB), got {channels}")


def read_frame(path: Path | IO[bytes], size: tuple[int, int], channels: int, name: str | None = None) -> np.ndarray:
    """One frame (a file, or an open binary stream called ``name``) at the working size;
    DataError naming it where it cannot be decoded (a header that opens but truncated or
    broken data fails only here)."""
    try:
        with Image.open(path) as im:
            return _to_array(im, size, channels)
    except _UNREADABLE as exc:
        raise DataError(f"{name or path}: not a readable image ({exc})") from None


def _read_folder(folder: Path, size: tuple[int, int], channels: int) -> tuple[np.ndarray, list[str], tuple[int, int]]:
    files = frame_files(folder)
    native = _check_same_size(files)
    frames = [read_frame(f, size, channels) for f in files]
    return np.stack(frames), [str(f) for f in files], native


def iter_video_frames(path: Path, size: tuple[int, int], channels: int) -> Iterator[tuple[np.ndarray, tuple[int, int]]]:
    """The frames of a video file one by one, as they are decoded (PyAV), at the working size,
    each with the (H, W) it was decoded at."""
    try:
        import av
    except ImportError:
        raise ConfigError(f"{path}: reading video files needs PyAV (pip install 'reconad[video]')") from None
    try:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                yield _to_array(frame.to_image(), size, channels), (int(frame.height), int(frame.width))
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: cannot decode the video ({exc})") from None


def _read_video(path: Path, size: tuple[int, int], channels: int) -> tuple[np.ndarray, list[str], tuple[int, int]]:
    decoded = list(iter_video_frames(path, size, channels))
    frames = [array for array, _ in decoded]
    native = decoded[-1][1] if decoded else (0, 0)
    if not frames:
        raise DataError(f"{path}: the video holds no frames")
    return np.stack(frames), [f"{path}#{i}" for i in range(len(frames))], native


def load_clip(path: PathLike, size: tuple[int, int], channels: int = 1, name: str | None = None) -> Clip:
    """A clip from a folder of frames or a video file, resized to ``size`` (H, W)."""
    _check_channels(channels)
    path = Path(path)
    if path.is_dir():
        frames, paths, native = _read_folder(path, size, channels)
    elif path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        frames, paths, native = _read_video(path, size, channels)
    else:
        raise DataError(f"{path}: neither a folder of frames nor a video file ({', '.join(VIDEO_EXTENSIONS)})")
    return Clip(name or path.stem, frames, paths, native_size=native)


def find_clips(paths: Sequence[PathLike]) -> list[Path]:
    """Clips named by ``paths``: a folder of frames, a folder of clip folders / video files,
    or video files."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        elif not p.is_dir():
            raise DataError(f"no such clip folder or video file: {p}")
        elif any(is_image_file(c) for c in p.iterdir() if c.is_file()):
            out.append(p)
        else:
            subs = sorted(
                (c for c in p.iterdir() if c.is_dir() or c.suffix.lower() in VIDEO_EXTENSIONS), key=natural_key
            )
            if not subs:
                raise DataError(f"{p}: holds neither frames nor clip folders nor video files")
            out.extend(subs)
    return out


# --------------------------------------------------------------------------- labels


_ENTRY = re.compile(r"gt_frame\s*=\s*\[([^\]]*)\]")


def parse_gt_frame_list(path: PathLike) -> list[list[tuple[int, int]]]:
    """The ``gt_frame`` entries of a UCSD ``.m`` list, in order: 1-based inclusive ranges."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise DataError(f"{path}: cannot read the frame-label list ({exc})") from None
    entries = []
    for k, body in enumerate(_ENTRY.findall(text), start=1):
        ranges = []
        for token in re.split(r"[,;\s]+", body.strip()):
            if not token:
                continue
            m = re.fullmatch(r"(\d+)(?::(\d+))?", token)
            if m is None:
                raise DataError(f"{path}: entry {k} has an unreadable range {token!r}")
            a = int(m.group(1))
            ranges.append((a, int(m.group(2) or a)))
        entries.append(ranges)
    if not entries:
        raise DataError(f"{path}: no 'gt_frame = [a:b]' entries found")
    return entries


def read_gt_mat(path: PathLike) -> list[list[tuple[int, int]]]:
    """Ranges per clip from a ``ped2.mat``-style file: ``gt`` holds one (2, k) start/end array per clip."""
    from scipy.io import loadmat

    path = Path(path)
    try:
        gt = loadmat(str(path))["gt"]
    except (OSError, ValueError, KeyError, NotImplementedError) as exc:
        raise DataError(f"{path}: no readable 'gt' variable ({exc})") from None
    out = []
    for k, cell in enumerate(np.asarray(gt, dtype=object).reshape(-1), start=1):
        try:
            arr = np.asarray(cell, dtype=np.int64).reshape(2, -1)
        except (TypeError, ValueError):
            raise DataError(f"{path}: 'gt' entry {k} is not a 2 x k array of start/end frames") from None
        out.append([(int(a), int(b)) for a, b in zip(arr[0], arr[1])])
    return out


def labels_from_ranges(ranges: list[tuple[int, int]], n_frames: int, source: Path, clip: str) -> np.ndarray:
    """Per-frame 0/1 labels from 1-based inclusive ranges; DataError for frames outside the clip."""
    labels = np.zeros(n_frames, dtype=np.int64)
    for a, b in ranges:
        if a < 1 or b < a or b > n_frames:
            raise DataError(f"{source}: clip {clip} has {n_frames} frames, but its labels name frames {a}:{b}")
        labels[a - 1 : b] = 1
    return labels


def _read_label_csv(path: Path, n_frames: int) -> np.ndarray:
    labels = np.zeros(n_frames, dtype=np.int64)
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                frame, label = int(row["frame"]), int(row["label"])
            except (KeyError, TypeError, ValueError):
                raise DataError(f"{path}: needs integer columns 'frame' (1-based) and 'label'") from None
            if not 1 <= frame <= n_frames:
                raise DataError(f"{path}: frame {frame} is outside the clip's {n_frames} frames")
            labels[frame - 1] = int(label != 0)
    return labels


def _clip_number(name: str) -> int | None:
    digits = _NUMBER.findall(name)
    return int(digits[-1]) if digits else None


def _read_masks(folder: Path, clip: Clip, size: tuple[int, int]) -> np.ndarray:
    files = frame_files(folder)
    if len(files) != len(clip):
        raise DataError(f"{folder}: {len(files)} masks for the {len(clip)} frames of clip {clip.name}")
    return np.stack([read_frame(f, size, 1)[..., 0] >= 128 for f in files])


def check_frame_numbers(clip: Clip) -> None:
    """DataError naming the first missing frame of a clip folder whose frame numbers skip one:
    labels are given by frame position, so a missing frame would shift every later label."""
    numbers = []
    for p in clip.paths:
        found = _NUMBER.findall(Path(p).stem) if "#" not in p else []
        if not found:
            return  # frames of a video file, or names without numbers: positions are all there is
        numbers.append(int(found[-1]))
    for i in range(1, len(numbers)):
        if numbers[i] != numbers[i - 1] + 1:
            after = Path(clip.paths[i - 1])
            raise DataError(
                f"{after.parent}: clip {clip.name} has no frame numbered {numbers[i - 1] + 1} (after {after.name}); "
                "its labels are by frame position, so every later label would shift"
            )


def _attach_labels(clips: list[Clip], split_dir: Path, root: Path, source: str) -> None:
    if source == "none":
        return
    for c in clips:
        check_frame_numbers(c)
    if source == "csv":
        for c in clips:
            folder = split_dir / "frames" / c.name
            found = [p for p in (folder.with_suffix(".csv"), folder / "labels.csv") if p.is_file()]
            if not found:
                raise DataError(f"{folder}: no {folder.name}.csv beside it nor labels.csv in it")
            c.labels = _read_label_csv(found[0], len(c))
        return
    if source == "m":
        lists = sorted(split_dir.glob("*.m"))
        if not lists:
            raise DataError(f"{split_dir}: no .m frame-label list (e.g. UCSDped2.m)")
        file, entries = lists[0], parse_gt_frame_list(lists[0])
    else:
        file = root / "ped2.mat" if (root / "ped2.mat").is_file() else next(iter(sorted(root.glob("*.mat"))), root)
        entries = read_gt_mat(file)
    if len(entries) != len(clips):
        raise DataError(f"{file}: {len(entries)} label entries for {len(clips)} clips in {split_dir / 'frames'}")
    for c, ranges in zip(clips, entries):
        c.labels = labels_from_ranges(ranges, len(c), file, c.name)


def _attach_masks(clips: list[Clip], split_dir: Path, size: tuple[int, int]) -> None:
    mask_root = split_dir / "pixel_masks"
    if not mask_root.is_dir():
        return
    folders = {_clip_number(d.name): d for d in mask_root.iterdir() if d.is_dir()}
    for c in clips:
        folder = folders.get(_clip_number(c.name))
        if folder is not None:
            c.masks = _read_masks(folder, c, size)


def _check_split_sizes(clips: list[Clip], folders: list[Path]) -> None:
    """DataError naming the first clip folder whose frames differ in size from the first
    clip's: one working size would squash them differently (their labels and masks too)."""
    first = clips[0].native_size
    for c, folder in zip(clips, folders):
        if c.native_size != first and first is not None and c.native_size is not None:
            (h0, w0), (h, w) = first, c.native_size
            raise DataError(
                f"{folder}: frames are {w}x{h}, but clip {clips[0].name} of the same split is {w0}x{h0}; "
                "the model takes one frame size (resize the clips alike first)"
            )


def load_ucsd_split(
    root: PathLike, split: str, size: tuple[int, int], channels: int = 1, labels: str = "m"
) -> list[Clip]:
    """Every clip of ``root/<split>/frames`` (``training`` or ``testing``); test clips get
    frame labels (``labels``: one of ``LABEL_SOURCES``) and pixel masks where present."""
    if labels not in LABEL_SOURCES:
        raise ConfigError(f"unknown label source {labels!r}; choose one of {', '.join(LABEL_SOURCES)}")
    root = Path(root)
    split_dir = root / split
    frames_dir = split_dir / "frames"
    if not frames_dir.is_dir():
        raise DataError(f"{frames_dir} not found: expected the UCSD layout {split}/frames/<clip>/*.jpg")
    folders = sorted((d for d in frames_dir.iterdir() if d.is_dir()), key=natural_key)
    if not folders:
        raise DataError(f"{frames_dir}: no clip folders")
    clips = [load_clip(d, size, channels, name=d.name) for d in folders]
    _check_split_sizes(clips, folders)
    if split != "training":
        _attach_labels(clips, split_dir, root, labels)
        _attach_masks(clips, split_dir, size)
    return clips


# --------------------------------------------------------------------------- windows


class ClipWindows(Dataset):
    """Windows of ``length`` frames every ``stride`` frames over ``clips``; the last window of a
    clip ends on its last frame, so every frame is covered.  A clip shorter than ``length``
    gives one window padded by repeating its last frame."""

    def __init__(self, clips: Sequence[Clip], length: int = 16, stride: int = 1) -> None:
        if length < 1 or stride < 1:
            raise ConfigError(f"clip length and stride must be >= 1, got {length} and {stride}")
        if not clips:
            raise DataError("no clips")
        self.clips = list(clips)
        shape = self.clips[0].frames.shape[1:]
        for clip in self.clips:
            if clip.frames.shape[1:] != shape:
                where = Path(clip.paths[0]).parent if clip.paths else clip.name
                raise DataError(
                    f"{where}: clip {clip.name} has frames of shape {list(clip.frames.shape[1:])} (H, W, C), "
                    f"but clip {self.clips[0].name} has {list(shape)}: the model takes one size"
                )
        self.length = int(length)
        self.stride = int(stride)
        self.windows: list[tuple[int, int]] = []
        for ci, clip in enumerate(self.clips):
            last = max(0, len(clip) - self.length)
            starts = list(range(0, last + 1, self.stride))
            if starts[-1] != last:
                starts.append(last)
            self.windows += [(ci, s) for s in starts]

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the frames."""
        _, h, w, c = self.clips[0].frames.shape
        return c, h, w

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> ClipItem:
        ci, start = self.windows[i]
        clip = self.clips[ci]
        idx = np.minimum(np.arange(start, start + self.length), len(clip) - 1)
        frames = frames_tensor(clip.frames[idx])
        labels = None if clip.labels is None else torch.from_numpy(clip.labels[idx])
        masks = None if clip.masks is None else torch.from_numpy(clip.masks[idx]).unsqueeze(1).float()
        return ClipItem(frames, clip.name, torch.from_numpy(idx), labels, masks)


def is_clip_dataset(data: Any) -> bool:
    """True for a :class:`ClipWindows` (or a Subset of one): what the Detector trains 3-D models on."""
    if isinstance(data, Subset):
        return is_clip_dataset(data.dataset)
    return isinstance(data, ClipWindows)


def frames_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames (T, H, W, C) -> floats (T, C, H, W) in [0, 1], what the video models take."""
    # one copy at most: decoded images can be read-only, a slice of a clip strided
    frames = np.require(frames, requirements=("C_CONTIGUOUS", "WRITEABLE"))
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)


def windows_of(data: Dataset) -> tuple[ClipWindows, list[int]]:
    """The :class:`ClipWindows` under ``data`` (itself or a Subset of one, at any depth) and
    the indices of its windows that ``data`` holds."""
    indices: list[int] | None = None
    while isinstance(data, Subset):
        mapped = [int(i) for i in data.indices]
        indices = mapped if indices is None else [mapped[i] for i in indices]
        data = data.dataset
    if not isinstance(data, ClipWindows):
        raise DataError(f"expected video clip windows, got {type(data).__name__}")
    return data, list(range(len(data))) if indices is None else indices


def clip_holdout(data: Dataset, fraction: float, seed: int) -> tuple[Subset, Subset] | None:
    """(train, held out) with whole clips held out, about ``fraction`` of the windows, in a
    seeded order: overlapping windows of one clip share frames, so windows held out of a
    clip that also trains would score as if seen.  None with fewer than two clips."""
    base, held = windows_of(data)
    clips = sorted({base.windows[i][0] for i in held})
    if len(clips) < 2:
        return None
    want = max(1, int(np.floor(fraction * len(held) + 0.5)))
    out: set[int] = set()
    taken = 0
    for ci in np.random.default_rng(seed).permutation(clips):
        if taken >= want or len(out) == len(clips) - 1:
            break
        out.add(int(ci))
        taken += sum(1 for i in held if base.windows[i][0] == ci)
    positions = range(len(held))
    val = [j for j in positions if base.windows[held[j]][0] in out]
    train = [j for j in positions if base.windows[held[j]][0] not in out]
    return Subset(data, train), Subset(data, val)


# --------------------------------------------------------------------------- fixture


def _shapes_frame(walkers: np.ndarray, t: int, size: tuple[int, int]) -> np.ndarray:
    """One normal frame: textured grey floor, dark 'walkers' moving slowly to the right."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    frame = 110 + 12 * np.sin(xx / 5.0) + 8 * np.cos(yy / 7.0)
    for k, (y0, x0, speed) in enumerate(walkers):
        x = int(x0 + speed * t) % (w + 6) - 6
        y = int(y0 + 3 * np.sin((t + 9 * k) / 8.0))
        frame[max(0, y) : max(0, y + 7), max(0, x) : max(0, x + 5)] = 40
    return frame


def _anomaly_box(t: int, t0: int, size: tuple[int, int]) -> tuple[int, int, int, int]:
    h, w = size
    s = max(6, min(h, w) // 5)
    x = (4 * (t - t0)) % max(1, w - s)
    y = (3 * (t - t0)) % max(1, h - s)
    return y, x, y + s, x + s


def _write_clip(folder: Path, frames: list[np.ndarray], ext: str, start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        Image.fromarray(np.clip(f, 0, 255).astype(np.uint8)).convert("RGB").save(folder / f"{i + start:03d}.{ext}")


def write_moving_shapes(
    root: PathLike,
    n_train: int = 4,
    n_test: int = 3,
    n_frames: int = 40,
    size: tuple[int, int] = (48, 64),
    seed: int = 0,
    ext: str = "png",
) -> Path:
    """A synthetic video set in the UCSD layout: dark blocks walking slowly to the right
    (normal); in each test clip a large bright block rushes diagonally through a range of
    frames (anomalous).  Writes ``training/frames/NN``, ``testing/frames/NN``, the label list
    ``testing/Shapes.m`` and masks ``testing/pixel_masks/NNN/NNN.png`` (1-based, like UCSD)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    entries = []
    for split, count in (("training", n_train), ("testing", n_test)):
        for c in range(count):
            walkers = np.stack([rng.integers(4, h - 12, 3), rng.integers(0, w, 3), rng.uniform(0.8, 1.6, 3)], axis=1)
            frames = [_shapes_frame(walkers, t, size) for t in range(n_frames)]
            if split == "testing":
                t0 = int(rng.integers(n_frames // 4, n_frames // 2))
                t1 = min(n_frames - 1, t0 + n_frames // 3)
                masks = [np.zeros(size, np.uint8) for _ in range(n_frames)]
                for t in range(t0, t1 + 1):
                    y0, x0, y1, x1 = _anomaly_box(t, t0, size)
                    frames[t][y0:y1, x0:x1] = 235
                    masks[t][y0:y1, x0:x1] = 255
                _write_clip(root / "testing" / "pixel_masks" / f"{c + 1:03d}", masks, "png", start=1)
                entries.append(f"TestVideoFile{{end+1}}.gt_frame = [{t0 + 1}:{t1 + 1}];")
            _write_clip(root / split / "frames" / f"{c + 1:02d}", frames, ext)
    (root / "testing" / "Shapes.m").write_text("TestVideoFile = {};\n" + "\n".join(entries) + "\n")
    return root
