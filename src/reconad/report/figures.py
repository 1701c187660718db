"""The report's figures: ROC and precision-recall curves, score histograms, the colour legend."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from reconad.atomic import atomic_path

NORMAL_COLOR = "#2b7bba"
ANOMALY_COLOR = "#d9534f"
THRESHOLD_COLOR = "#222222"


def _figure(width: float = 3.8, height: float = 3.2) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, alpha=0.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _save_figure(fig: Any, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def _unit_axes(ax: Any, xlabel: str, ylabel: str, title: str, legend: str) -> None:
    """Both axes on [0, 1], labels, title and a frameless legend."""
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc=legend, frameon=False)


def roc_figure(y: np.ndarray, s: np.ndarray, threshold: float | None, path: Path) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    fpr, tpr, _ = roc_curve(y, s)
    fig, ax = _figure()
    ax.plot(fpr, tpr, color=ANOMALY_COLOR, lw=2, label=f"AUROC {roc_auc_score(y, s):.3f}")
    ax.plot([0, 1], [0, 1], color="#999999", lw=1, ls="--", label="chance")
    if threshold is not None:
        pred = s > threshold
        ax.plot(
            [pred[y == 0].mean()], [pred[y == 1].mean()], "o", color=THRESHOLD_COLOR, ms=7, label="at the threshold"
        )
    _unit_axes(
        ax,
        "false-alarm rate (normal images flagged)",
        "detection rate (anomalies flagged)",
        "ROC curve (image level)",
        "lower right",
    )
    return _save_figure(fig, path)


def pr_figure(y: np.ndarray, s: np.ndarray, threshold: float | None, path: Path) -> Path:
    from sklearn.metrics import average_precision_score, precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, s)
    fig, ax = _figure()
    ax.plot(
        recall,
        precision,
        color=ANOMALY_COLOR,
        lw=2,
        drawstyle="steps-post",
        label=f"AUPR {average_precision_score(y, s):.3f}",
    )
    ax.axhline(y.mean(), color="#999999", lw=1, ls="--", label=f"chance ({y.mean():.2f})")
    if threshold is not None:
        pred = s > threshold
        if pred.any():
            ax.plot([pred[y == 1].mean()], [y[pred].mean()], "o", color=THRESHOLD_COLOR, ms=7, label="at the threshold")
    _unit_axes(ax, "recall (detection rate)", "precision", "Precision-recall curve (image level)", "lower left")
    return _save_figure(fig, path)


def histogram_figure(y: np.ndarray, s: np.ndarray, threshold: float | None, path: Path) -> Path:
    fig, ax = _figure(5.4, 3.2)
    lo, hi = float(s.min()), float(s.max())
    if threshold is not None:
        lo, hi = min(lo, threshold), max(hi, threshold)
    pad = 0.03 * (hi - lo) if hi > lo else 0.5
    bins = np.linspace(lo - pad, hi + pad, 41)
    for label, name, color in ((0, "normal", NORMAL_COLOR), (1, "anomalous", ANOMALY_COLOR)):
        part = s[y == label]
        if part.size:
            ax.hist(
                part, bins=bins, color=color, alpha=0.6, label=f"{name} ({part.size})", edgecolor="white", linewidth=0.5
            )
    if threshold is not None:
        ax.axvline(threshold, color=THRESHOLD_COLOR, lw=1.8, ls="--", label=f"threshold {threshold:.4g}")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("image anomaly score")
    ax.set_ylabel("test images")
    ax.set_title("Score distribution on the test split")
    ax.legend(frameon=False)
    return _save_figure(fig, path)


def png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def colorbar_png() -> bytes:
    """A small horizontal legend of the heat-map colours."""
    from matplotlib import colormaps

    ramp = colormaps["jet"](np.linspace(0, 1, 256))[None, :, :3]
    img = (np.repeat(ramp, 12, axis=0) * 255).astype(np.uint8)
    return png_bytes(img)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
