"""Clips where the anomaly is motion alone: dark blocks walk right at 1-1.5 px a frame; in
the test clip one more block, drawn the same, rushes across at 8 px a frame."""

from __future__ import annotations

import numpy as np

from reconad.data.video import Clip

SIZE = (64, 96)


def toy_frames(
    n: int, starts: list[tuple[int, int]], speeds: list[float], fast: tuple[int, int, int] | None = None
) -> np.ndarray:
    """(n, H, W, 1) uint8 frames; ``fast`` = (first frame, end frame, row) of the rushing block."""
    h, w = SIZE
    yy, xx = np.mgrid[0:h, 0:w]
    out = []
    for t in range(n):
        f = 110 + 12 * np.sin(xx / 5.0) + 8 * np.cos(yy / 7.0)
        for (y0, x0), v in zip(starts, speeds):
            x = int(x0 + v * t) % (w + 12) - 12
            f[y0 : y0 + 12, max(0, x) : max(0, x + 10)] = 40
        if fast is not None and fast[0] <= t < fast[1]:
            x = int(8 * (t - fast[0])) % (w + 12) - 12
            f[fast[2] : fast[2] + 12, max(0, x) : max(0, x + 10)] = 40
        out.append(np.clip(f, 0, 255).astype(np.uint8)[..., None])
    return np.stack(out)


def motion_toy(seed: int = 0) -> tuple[list[Clip], Clip]:
    """Four normal training clips of 40 frames and one test clip of 60 whose frames 20-39 hold
    the rushing block (its labels)."""
    rng = np.random.default_rng(seed)

    def walkers() -> list[tuple[int, int]]:
        return [(int(rng.integers(4, 48)), int(rng.integers(0, 96))) for _ in range(2)]

    train = [Clip(f"t{i}", toy_frames(40, walkers(), [1.0, 1.5]), [f"t{i}/{j}" for j in range(40)]) for i in range(4)]
    labels = np.zeros(60, np.int64)
    labels[20:40] = 1
    frames = toy_frames(60, walkers(), [1.0, 1.5], fast=(20, 40, 26))
    return train, Clip("test", frames, [f"test/{j}" for j in range(60)], labels=labels)
