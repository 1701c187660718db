"""The report's galleries: which test images to show, their thumbnails and captions, the size budget."""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reconad.atomic import write_bytes
from reconad.report.figures import data_uri, png_bytes
from reconad.visualize import overlay_panel


@dataclass
class Gallery:
    """One section of thumbnails: which test images, and what to say when there are none."""

    key: str
    title: str
    intro: str
    indices: list[int] = field(default_factory=list)
    total: int = 0
    empty_note: str = ""


def select_galleries(y: np.ndarray, s: np.ndarray, threshold: float | None, top: int, errors: int) -> list[Gallery]:
    order = np.argsort(-s, kind="stable")
    out = [
        Gallery(
            "top",
            "Most anomalous test images",
            "The highest-scoring test images, whatever their label.",
            [int(i) for i in order[:top]],
            len(order),
        )
    ]
    if threshold is None:
        note = "The run has no threshold, so there are no false alarms or misses to show."
        out.append(Gallery("false-alarms", "False alarms", "", [], 0, note))
        out.append(Gallery("misses", "Misses", "", [], 0, note))
        return out
    fa = [int(i) for i in order if y[i] == 0 and s[i] > threshold]
    miss = [int(i) for i in order[::-1] if y[i] == 1 and s[i] <= threshold]
    out.append(
        Gallery(
            "false-alarms",
            "False alarms at the threshold",
            "Normal images scored above the threshold, highest score first.",
            fa[:errors],
            len(fa),
            "No normal test image is above the threshold.",
        )
    )
    out.append(
        Gallery(
            "misses",
            "Misses at the threshold",
            "Anomalous images scored at or below the threshold, lowest score first.",
            miss[:errors],
            len(miss),
            "No anomalous test image is below the threshold."
            if (y == 1).any()
            else "The test split has no anomalous images.",
        )
    )
    return out


def fit_budget(galleries: list[Gallery], panels: dict[int, np.ndarray], pngs: dict[int, bytes], budget: int) -> int:
    """Shrink the embedded thumbnails to ``budget`` bytes; return how many were dropped.

    First every thumbnail becomes a 256-colour palette PNG (about half the size, hardly
    visible on heat maps), then the last thumbnail of the longest gallery is dropped
    until the rest fits.
    """

    def total() -> int:
        shown = {i for g in galleries for i in g.indices}
        return sum(len(pngs[i]) for i in shown)

    if total() <= budget:
        return 0
    for i, panel in panels.items():
        buf = io.BytesIO()
        Image.fromarray(panel).quantize(256, method=Image.Quantize.FASTOCTREE).save(buf, format="PNG", optimize=True)
        pngs[i] = buf.getvalue()
    dropped = 0
    while total() > budget:
        longest = max(galleries, key=lambda g: len(g.indices))
        if not longest.indices:
            break
        longest.indices.pop()
        dropped += 1
    return dropped


def card_html(
    i: int,
    rank: int | None,
    png: bytes,
    path: str,
    label: int,
    score: float,
    p_value: float | None,
    threshold: float | None,
) -> str:
    name = f"{Path(path).parent.name}/{Path(path).name}" if path else f"#{i}"
    kind = "anomalous" if label else "normal"
    bits = [f"<span class='tag {kind}'>{kind}</span>"]
    if threshold is not None:
        flagged = score > threshold
        bits.append(f"<span class='tag {'flag' if flagged else 'pass'}'>{'flagged' if flagged else 'passed'}</span>")
    line = f"score <b>{score:.4g}</b>"
    if p_value is not None:
        line += f" &nbsp;·&nbsp; p-value <b>{p_value:.3g}</b>"
    rank_html = f"<span class='rank'>rank {rank}</span>" if rank is not None else ""
    return (
        f"<figure class='card'><img alt='{html.escape(name)}' src='{data_uri(png)}'>"
        f"<figcaption><div class='row'><span>{' '.join(bits)}</span>{rank_html}</div>"
        f"<div class='row'><span>{line}</span><span class='name'>{html.escape(name)}</span></div>"
        f"</figcaption></figure>"
    )


def gallery_cards(
    run_out: Path,
    galleries: list[Gallery],
    view: GalleryInputs,
    thumb_size: int,
    max_embedded_bytes: int,
) -> tuple[dict[int, str], int]:
    """HTML cards of every image shown (and their PNGs under ``images/``); how many were dropped."""
    y, s = view.labels, view.scores
    rank = {int(i): r + 1 for r, i in enumerate(np.argsort(-s, kind="stable"))}
    panels: dict[int, np.ndarray] = {}
    pngs: dict[int, bytes] = {}
    for g in galleries:
        for i in g.indices:
            if i not in panels:
                mask = view.masks[i] if view.masks is not None and y[i] == 1 else None
                panels[i] = overlay_panel(
                    view.images(i), np.asarray(view.maps[i]), *view.color_range, mask=mask, size=thumb_size
                )
                pngs[i] = png_bytes(panels[i])
    omitted = fit_budget(galleries, panels, pngs, max_embedded_bytes)
    cards: dict[int, str] = {}
    shown = {i for g in galleries for i in g.indices}
    for i, png in pngs.items():
        if i not in shown:
            continue
        where = Path(view.paths[i])
        stem = f"{rank[i]:04d}_{'anomalous' if y[i] else 'normal'}_{where.parent.name}_{where.stem}"
        write_bytes(run_out / "images" / f"{stem}.png", png)
        p_value = None if view.p_values is None else float(view.p_values[i])
        cards[i] = card_html(i, rank[i], png, str(view.paths[i]), int(y[i]), float(s[i]), p_value, view.threshold)
    return cards, omitted


@dataclass
class GalleryInputs:
    """What the galleries draw from: the whole test split in one order."""

    scores: np.ndarray
    labels: np.ndarray
    paths: Sequence[str]
    maps: np.ndarray
    images: Callable[[int], Any]
    masks: np.ndarray | None
    p_values: np.ndarray | None
    threshold: float | None
    color_range: tuple[float, float]
