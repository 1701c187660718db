"""MemAE's paper recipe on UCSD Ped2 end to end on one CUDA GPU, in under 9 minutes.

    make video-paper        # python benchmarks/video_paper_gpu.py --root ../shared/data/ucsd-ped2

The recipe is ``reconad.models.memae.PAPER`` (its module docstring lists every departure
from the official code): 256x256 grey frames in [-1, 1], 16-frame windows at stride 1,
the 3-D MemAE with 2,000 memory slots, Adam lr 1e-4, batch 14, up to 100 epochs.  What
this script adds for speed, beside ``reconad benchmark video --preset paper`` (which
trains through the Detector):

* every frame is decoded once (``reconad.data.video.load_ucsd_split``) into one uint8
  tensor per split, kept on the device (pinned host memory on the way); windows are
  gathered from it by index, with no DataLoader;
* mixed precision on CUDA (``torch.autocast`` in bfloat16, or float16 with gradient
  scaling where the GPU has no bfloat16); float32 on CPU;
* ``--budget-s``: training stops after that many seconds (checked after each step, the
  GPU synchronised every few steps); the epochs done (fractional) are recorded, so a
  run cut short says so.  The default leaves time under 9 minutes for decoding, scoring
  and the metrics.

Scoring takes every whole 16-frame test window at stride 1 and reports, through the
video protocol's own metric functions: ``frame_auroc_centre`` (the official evaluation:
each window's mean residual norm at its centre frame, min-max per video),
``frame_auroc_micro`` (a frame's score is the mean error over the windows covering it,
no normalisation, all test frames), ``frame_auroc_clip`` (the same, min-max per video),
``pixel_auroc`` (the error maps against the masks at the working size), the training and
scoring seconds, the device and the epochs.  Everything goes to ``OUT/results.json``.

``--frame-size``, ``--epochs`` and ``--batch-size`` override the recipe for tests and CPU
figures; each override is listed under ``departures`` in results.json.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.clips import ClipScores
from reconad.data.video import Clip, load_ucsd_split
from reconad.errors import ConfigError, ReconadError
from reconad.jsonfile import write_json
from reconad.models.memae import PAPER, MemAE, MemAEConfig
from reconad.protocols.results import machine_info
from reconad.protocols.video import centre_metrics, frame_metrics, mask_metric

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
#: training seconds by default: with decoding (~20 s), scoring and metrics (~1 min on a
#: modern GPU) and start-up, the whole run stays under 9 minutes
DEFAULT_BUDGET_S = 390.0


def _size(text: str) -> list[int]:
    try:
        h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W, got {text!r}") from None
    if min(h, w) < 16:
        raise argparse.ArgumentTypeError(f"frames must be at least 16x16, got {text}")
    return [h, w]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", required=True, help="clip set in the UCSD layout (e.g. ../shared/data/ucsd-ped2)")
    p.add_argument("--out", default="runs/video-paper", help="output folder (results.json)")
    p.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="training stops after this many seconds")
    p.add_argument("--epochs", type=int, default=PAPER.training["epochs"], help="epochs at most (the recipe's 100)")
    p.add_argument("--batch-size", type=int, default=PAPER.training["batch_size"], help="the recipe's 14")
    p.add_argument("--frame-size", type=_size, default=PAPER.clips["frame_size"], metavar="H,W",
                   help="working resolution (the recipe's 256,256; smaller only for tests and CPU figures)")  # fmt: skip
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: bf16 on CUDA where supported, else fp16 with loss scaling; fp32 on CPU")  # fmt: skip
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda[:N]")
    p.add_argument("--labels", default="m", choices=("m", "mat", "csv"), help="test-frame labels (default m)")
    p.add_argument("--score-batch", type=int, default=16, help="test windows per forward pass")
    p.add_argument("--threads", type=int, default=None, help="CPU: torch intra-op threads")
    p.add_argument("--seed", type=int, default=0)
    return p


# ------------------------------------------------------------------ set-up


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {name}: no CUDA GPU here")
    return torch.device(name)


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _precision(name: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None: float32 throughout)."""
    if device.type != "cuda":
        if name in ("bf16", "fp16"):
            raise ConfigError(f"--precision {name} is for CUDA; the CPU runs in fp32")
        return None
    if name == "fp32":
        return None
    if name == "bf16" or (name == "auto" and torch.cuda.is_bf16_supported()):
        return torch.bfloat16
    return torch.float16


class FrameCache:
    """Every frame of a split as one uint8 tensor (N, 1, H, W) on the device, and the first
    frame (global index) of every whole window of ``length`` frames at stride 1."""

    def __init__(self, clips: list[Clip], length: int, device: torch.device) -> None:
        frames = torch.from_numpy(np.concatenate([c.frames for c in clips])).permute(0, 3, 1, 2).contiguous()
        if device.type == "cuda":
            frames = frames.pin_memory()
        self.frames = frames.to(device, non_blocking=True)
        self.length = length
        self.offsets = np.cumsum([0] + [len(c) for c in clips])[:-1]
        self.starts = [np.arange(o, o + len(c) - length + 1) for o, c in zip(self.offsets, clips)]
        short = [c.name for c, s in zip(clips, self.starts) if len(s) == 0]
        if short:
            raise ConfigError(f"clips {', '.join(short)} have fewer than {length} frames: no whole window")
        self.all_starts = torch.from_numpy(np.concatenate(self.starts)).to(device)
        self.steps = torch.arange(length, device=device)

    def windows(self, starts: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, H, W) float in [0, 1] of the windows starting at ``starts``."""
        idx = starts[:, None] + self.steps[None, :]
        return self.frames[idx].permute(0, 2, 1, 3, 4).float().div_(255.0)


# ------------------------------------------------------------------ training


def train(model: MemAE, cache: FrameCache, args: argparse.Namespace, dtype: torch.dtype | None) -> dict[str, Any]:
    """The recipe's Adam over shuffled windows until ``--epochs`` or ``--budget-s``."""
    device = cache.frames.device
    opt = torch.optim.Adam(model.parameters(), lr=PAPER.training["lr"])
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    gen = torch.Generator(device="cpu").manual_seed(args.seed)
    n, steps, seen, loss_value = len(cache.all_starts), 0, 0, float("nan")
    stopped = False
    model.train()
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        order = cache.all_starts[torch.randperm(n, generator=gen).to(device)]
        for b in range(0, n, args.batch_size):
            x = cache.windows(order[b : b + args.batch_size])
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                loss = model.loss(x, torch.zeros(len(x), dtype=torch.long, device=device))
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            steps, seen = steps + 1, seen + len(x)
            if device.type != "cuda" or steps % 10 == 0:
                loss_value = float(loss.detach())  # synchronises the GPU: the clock below is honest
                if not math.isfinite(loss_value):
                    raise ReconadError(f"training diverged at step {steps} (loss {loss_value})")
                if time.perf_counter() - t0 >= args.budget_s:
                    stopped = True
                    break
        if stopped:
            break
    loss_value = float(loss.detach())
    return {
        "train_seconds": time.perf_counter() - t0,
        "steps": steps,
        "epochs_done": seen / n,
        "epochs_planned": args.epochs,
        "stopped_by_budget": stopped,
        "final_loss": loss_value,
    }


# ------------------------------------------------------------------ scoring


@torch.inference_mode()
def score(
    model: MemAE, clips: list[Clip], cache: FrameCache, args: argparse.Namespace, dtype: torch.dtype | None
) -> tuple[list[ClipScores], float]:
    """Every whole test window at stride 1: its mean squared error and mean residual norm,
    and per frame the mean error map over the windows covering it."""
    device = cache.frames.device
    model.eval()
    t0 = time.perf_counter()
    h, w = cache.frames.shape[-2:]
    sums = torch.zeros((len(cache.frames), h, w), dtype=torch.float32, device=device)
    counts = torch.zeros(len(cache.frames), dtype=torch.float32, device=device)
    squares, norms = [], []
    for b in range(0, len(cache.all_starts), args.score_batch):
        starts = cache.all_starts[b : b + args.score_batch]
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            _, err = model.score(cache.windows(starts))
        err = err.float()  # (B, C, T, H, W) squared error in the model's range
        squares.append(err.mean(dim=(1, 2, 3, 4)))
        norms.append(err.sum(dim=1).sqrt().mean(dim=(1, 2, 3)))
        idx = (starts[:, None] + cache.steps[None, :]).reshape(-1)
        sums.index_add_(0, idx, err.mean(dim=1).reshape(-1, h, w))
        counts.index_add_(0, idx, torch.ones_like(idx, dtype=torch.float32))
    maps = (sums / counts.clamp_min(1)[:, None, None]).cpu().numpy()
    sq, nrm = torch.cat(squares).cpu().numpy(), torch.cat(norms).cpu().numpy()
    seconds = time.perf_counter() - t0
    scored, k = [], 0
    for clip, offset, starts_np in zip(clips, cache.offsets, cache.starts):
        m = maps[offset : offset + len(clip)]
        n = len(starts_np)
        frame = m.reshape(len(clip), -1).mean(axis=1).astype(np.float64)
        scored.append(ClipScores(clip, frame, m, starts_np - offset, sq[k : k + n], nrm[k : k + n]))
        k += n
    return scored, seconds


# ------------------------------------------------------------------ the run


def _departures(args: argparse.Namespace, dtype: torch.dtype | None) -> dict[str, Any]:
    given = {"frame_size": args.frame_size, "epochs": args.epochs, "batch_size": args.batch_size}
    recipe = {"frame_size": PAPER.clips["frame_size"], **{k: PAPER.training[k] for k in ("epochs", "batch_size")}}
    out: dict[str, Any] = {k: {"given": v, "recipe": recipe[k]} for k, v in given.items() if v != recipe[k]}
    if dtype is not None:
        out["precision"] = {"given": str(dtype).replace("torch.", ""), "recipe": "float32"}
    return out


def _check(args: argparse.Namespace) -> None:
    for name in ("epochs", "batch_size", "score_batch"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if not args.budget_s > 0:
        raise ConfigError(f"--budget-s must be > 0, got {args.budget_s}")


def main(args: argparse.Namespace) -> dict[str, Any]:
    t_start = time.perf_counter()
    _check(args)
    device = _device(args.device)
    dtype = _precision(args.precision, device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size, length = (args.frame_size[0], args.frame_size[1]), int(PAPER.clips["clip_length"])
    t0 = time.perf_counter()
    train_clips = load_ucsd_split(args.root, "training", size, 1)
    test_clips = load_ucsd_split(args.root, "testing", size, 1, labels=args.labels)
    train_cache, test_cache = FrameCache(train_clips, length, device), FrameCache(test_clips, length, device)
    decode_seconds = time.perf_counter() - t0
    print(f"decoded {len(train_cache.frames)} training and {len(test_cache.frames)} test frames "
          f"in {decode_seconds:.0f}s; {len(train_cache.all_starts)} training windows", flush=True)  # fmt: skip
    model = MemAE(MemAEConfig(input_shape=[1, length, *size], **PAPER.model)).to(device)
    trained = train(model, train_cache, args, dtype)
    print(f"trained {trained['epochs_done']:.2f} epochs in {trained['train_seconds']:.0f}s", flush=True)
    scored, score_seconds = score(model, test_clips, test_cache, args, dtype)
    micro, per_clip = frame_metrics(scored, "global"), frame_metrics(scored, "clip")
    doc = {
        "recipe": "reconad.models.memae.PAPER",
        "departures": _departures(args, dtype),
        "device": str(device),
        "device_name": _device_name(device),
        "precision": "float32" if dtype is None else str(dtype).replace("torch.", ""),
        "frame_size": list(size),
        "clip_length": length,
        **centre_metrics(scored, length),
        "frame_auroc_micro": micro["frame_auroc"],
        "frame_auroc_clip": per_clip["frame_auroc"],
        "mean_clip_auroc": per_clip["mean_clip_auroc"],
        "pixel_auroc": mask_metric(scored),
        **trained,
        "decode_seconds": decode_seconds,
        "score_seconds": score_seconds,
        "test_frames": int(len(test_cache.frames)),
        "machine": machine_info(),
        "args": dict(vars(args)),
    }
    doc["total_seconds"] = time.perf_counter() - t_start
    Path(args.out).mkdir(parents=True, exist_ok=True)
    write_json(Path(args.out) / "results.json", doc)
    keys = ("frame_auroc_centre", "frame_auroc_micro", "frame_auroc_clip", "pixel_auroc", "epochs_done")
    print(json.dumps({k: doc[k] for k in keys + ("train_seconds", "score_seconds", "device_name")}), flush=True)
    return doc


if __name__ == "__main__":
    ns = parser().parse_args()
    try:
        main(ns)
    except ReconadError as exc:
        raise SystemExit(f"video_paper_gpu: error: {exc}") from None
