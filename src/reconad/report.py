"""One self-contained HTML report of a tested run, for a person to read.

``reconad test RUN`` (and ``reconad report RUN``) call :func:`write_report` from
:func:`reconad.runs.test_run` with what the test pass already holds in memory (scores,
labels, anomaly maps, masks, the test images), so nothing is scored twice.  It writes
``RUN/report/report.html`` (every image embedded as base64 PNG: the file can be mailed
or archived alone) and the same figures as PNG files beside it:

* the metrics table (image AUROC / AUPR / F1-max, pixel AUROC and PRO when the test set
  has masks, the threshold and its basis, the realised false-alarm and detection rates);
* ROC and precision-recall curves (skipped, with a note, when the test set has one class);
* histograms of normal vs anomalous scores with the threshold line;
* galleries of the most anomalous images, the false alarms and the misses at the
  threshold: each image beside its heat-map overlay, the ground-truth region outlined.

The threshold, its basis (``threshold_basis``) and the p-values (a ``p_value`` column of
``scores.csv``) are read from the run's files when present; the report says so when not.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from PIL import Image

from reconad.errors import DataError
from reconad.visualize import overlay_panel

REPORT_DIR = "report"
REPORT_FILE = "report.html"
#: panel size (pixels, longer side) of the gallery thumbnails
THUMB_SIZE = 192
#: budget of the embedded gallery PNGs (bytes, before base64): keeps report.html under ~5 MB
MAX_EMBEDDED_BYTES = 3_500_000
NORMAL_COLOR = "#2b7bba"
ANOMALY_COLOR = "#d9534f"
THRESHOLD_COLOR = "#222222"


def report_path(run: str | os.PathLike) -> Path:
    """Where :func:`write_report` puts the HTML file of ``run``."""
    return Path(run) / REPORT_DIR / REPORT_FILE


@dataclass
class Gallery:
    """One section of thumbnails: which test images, and what to say when there are none."""

    key: str
    title: str
    intro: str
    indices: list[int] = field(default_factory=list)
    total: int = 0
    empty_note: str = ""


# ------------------------------------------------------------------------ inputs


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _read_p_values(run: Path, paths: Sequence[str]) -> np.ndarray | None:
    """The ``p_value`` column of ``scores.csv`` in the order of ``paths``; None when absent."""
    try:
        with open(run / "scores.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError:
        return None
    if not rows or "p_value" not in rows[0]:
        return None
    by_path = {}
    for r in rows:
        try:
            by_path[r["path"]] = float(r["p_value"])
        except (TypeError, ValueError):
            continue
    if not all(str(p) in by_path for p in paths):
        return None
    return np.array([by_path[str(p)] for p in paths], dtype=np.float64)


def _as_float(value: Any) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


# ----------------------------------------------------------------------- figures


def _figure(width: float = 3.8, height: float = 3.2):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    ax.grid(True, alpha=0.25)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _save_figure(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _roc_figure(y: np.ndarray, s: np.ndarray, threshold: float | None, path: Path) -> Path:
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
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("false-alarm rate (normal images flagged)")
    ax.set_ylabel("detection rate (anomalies flagged)")
    ax.set_title("ROC curve (image level)")
    ax.legend(loc="lower right", frameon=False)
    return _save_figure(fig, path)


def _pr_figure(y: np.ndarray, s: np.ndarray, threshold: float | None, path: Path) -> Path:
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
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("recall (detection rate)")
    ax.set_ylabel("precision")
    ax.set_title("Precision-recall curve (image level)")
    ax.legend(loc="lower left", frameon=False)
    return _save_figure(fig, path)


def _histogram_figure(y: np.ndarray, s: np.ndarray, threshold: float | None, path: Path) -> Path:
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


def _colorbar_png() -> bytes:
    """A small horizontal legend of the heat-map colours."""
    from matplotlib import colormaps

    ramp = colormaps["jet"](np.linspace(0, 1, 256))[None, :, :3]
    img = (np.repeat(ramp, 12, axis=0) * 255).astype(np.uint8)
    return _png_bytes(img)


# ------------------------------------------------------------------------- HTML


def _png_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(value: Any, digits: int = 4) -> str:
    v = _as_float(value)
    if v is None:
        return "—"
    return f"{v:.{digits}f}"


def _rate(k: int, n: int) -> str:
    return "—" if n == 0 else f"{100.0 * k / n:.1f}% <span class='muted'>({k} of {n})</span>"


def _fit_budget(galleries: list[Gallery], panels: dict[int, np.ndarray], pngs: dict[int, bytes], budget: int) -> int:
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


def _galleries(y: np.ndarray, s: np.ndarray, threshold: float | None, top: int, errors: int) -> list[Gallery]:
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


CSS = """
:root { --ink:#1d2330; --muted:#6b7280; --line:#e3e6ec; --bg:#f5f6f8; --card:#ffffff;
        --accent:#3558c8; --bad:#d9534f; --good:#2b7bba; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
       color:var(--ink); background:var(--bg); }
header { background:#1d2330; color:#fff; padding:28px 40px 22px; }
header h1 { margin:0 0 6px; font-size:26px; font-weight:600; letter-spacing:.2px; }
header .sub { color:#c8cdd8; font-size:14px; }
header .sub b { color:#fff; font-weight:600; }
main { max-width:1280px; margin:0 auto; padding:24px 40px 48px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:20px 24px;
          margin:0 0 22px; }
h2 { margin:0 0 4px; font-size:19px; font-weight:600; }
p.intro, .muted { color:var(--muted); }
p.intro { margin:0 0 14px; font-size:14px; }
.kpis { display:grid; grid-template-columns:repeat(auto-fit,minmax(180px,1fr)); gap:14px; margin:0 0 22px; }
.kpi { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:14px 18px; }
.kpi .v { font-size:28px; font-weight:600; font-variant-numeric:tabular-nums; }
.kpi .k { color:var(--muted); font-size:13px; }
.cols { display:grid; grid-template-columns:1fr 1fr; gap:28px; }
table.metrics { border-collapse:collapse; width:100%; font-variant-numeric:tabular-nums; }
table.metrics th { text-align:left; font-weight:500; color:var(--muted); padding:6px 12px 6px 0;
                   border-bottom:1px solid var(--line); width:46%; }
table.metrics td { padding:6px 0; border-bottom:1px solid var(--line); }
table.metrics tr.group th { color:var(--ink); font-weight:600; padding-top:14px; border-bottom:2px solid var(--line); }
.figs { display:grid; grid-template-columns:1fr 1fr 1.4fr; gap:16px; align-items:start; }
.figs.one { grid-template-columns:minmax(0,640px); }
.figs img { width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
nav { margin-top:12px; font-size:13px; }
nav a { color:#c8cdd8; text-decoration:none; margin-right:18px; border-bottom:1px dotted #6b7280; }
nav a:hover { color:#fff; }
.note { background:#fff8e6; border:1px solid #f1dca7; border-radius:6px; padding:10px 14px; color:#6b5313;
        font-size:14px; margin:6px 0 0; }
.grid { display:grid; grid-template-columns:repeat(auto-fill,minmax(300px,1fr)); gap:16px; }
figure.card { margin:0; border:1px solid var(--line); border-radius:8px; overflow:hidden; background:#fafbfc; }
figure.card img { display:block; width:100%; height:auto; image-rendering:auto; }
figure.card figcaption { padding:7px 10px 8px; font-size:13px; line-height:1.5; }
figure.card .row { display:flex; justify-content:space-between; align-items:baseline; gap:8px; }
figure.card .rank { color:var(--muted); font-size:12px; white-space:nowrap; }
figure.card .name { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:12px;
                    color:var(--muted); overflow-wrap:anywhere; text-align:right; }
.tag { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px; font-weight:600; color:#fff; }
.tag.anomalous { background:var(--bad); } .tag.normal { background:var(--good); }
.tag.flag { background:#1d2330; } .tag.pass { background:#9aa3b2; }
.legend { display:flex; align-items:center; gap:10px; font-size:13px; color:var(--muted); margin:0 0 14px; }
.legend img { height:12px; width:220px; border-radius:2px; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:0 0 30px; }
@media (max-width:900px) {
  .cols, .figs { grid-template-columns:1fr; }
  main, header { padding-left:16px; padding-right:16px; }
}
"""


def _metrics_rows(
    m: dict[str, Any], y: np.ndarray, s: np.ndarray, threshold: float | None, basis: str, has_masks: bool
) -> tuple[str, str]:
    """Two HTML tables: quality metrics, and the operating point."""
    n_normal, n_anom = int((y == 0).sum()), int((y == 1).sum())

    def row(k: str, v: str) -> str:
        return f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>"

    def group(title: str) -> str:
        return f"<tr class='group'><th colspan='2'>{html.escape(title)}</th></tr>"

    left = [
        group("Detection (image level)"),
        row("Image AUROC", _fmt(m.get("image_auroc"))),
        row("Image AUPR", _fmt(m.get("image_aupr"))),
        row("Image F1-max", _fmt(m.get("image_f1_max"))),
    ]
    if _as_float(m.get("image_f1_threshold")) is not None:
        left.append(row("Score at F1-max", _fmt(m.get("image_f1_threshold"))))
    left.append(group("Localization (pixel level)"))
    if has_masks:
        left.append(row("Pixel AUROC", _fmt(m.get("pixel_auroc"))))
        if "pro" in m:
            left.append(row("PRO (FPR ≤ 0.3)", _fmt(m.get("pro"))))
    else:
        left.append(row("Pixel metrics", "<span class='muted'>not available: the test split has no masks</span>"))
    left += [
        group("Test split"),
        row("Images", str(len(y))),
        row("Normal", str(n_normal)),
        row("Anomalous", str(n_anom)),
    ]

    right = [group("Operating point")]
    if threshold is None:
        right.append(row("Threshold", "<span class='muted'>none saved with the model</span>"))
    else:
        pred = s > threshold
        fa, det = int(pred[y == 0].sum()), int(pred[y == 1].sum())
        right += [
            row("Threshold", f"{threshold:.6g}"),
            row("Basis", html.escape(basis)),
            row("Realised false-alarm rate", _rate(fa, n_normal)),
            row("Realised detection rate", _rate(det, n_anom)),
            row("Flagged / passed", f"{int(pred.sum())} / {int((~pred).sum())}"),
            row("False alarms / misses", f"{fa} / {n_anom - det}"),
        ]
    right.append(group("Speed"))
    ips = _as_float(m.get("images_per_second"))
    right.append(
        row(
            "Test throughput",
            "—"
            if ips is None
            else f"{ips:.1f} images/s"
            + (
                f" <span class='muted'>({_fmt(m.get('test_seconds'), 1)} s in all)</span>"
                if _as_float(m.get("test_seconds")) is not None
                else ""
            ),
        )
    )
    table = "<table class='metrics'>{}</table>"
    return table.format("".join(left)), table.format("".join(right))


def _card(
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
        f"<figure class='card'><img alt='{html.escape(name)}' src='{_data_uri(png)}'>"
        f"<figcaption><div class='row'><span>{' '.join(bits)}</span>{rank_html}</div>"
        f"<div class='row'><span>{line}</span><span class='name'>{html.escape(name)}</span></div>"
        f"</figcaption></figure>"
    )


# -------------------------------------------------------------------------- API


def write_report(
    run_dir: str | os.PathLike,
    *,
    scores: np.ndarray,
    labels: np.ndarray,
    paths: Sequence[str],
    maps: np.ndarray,
    images: Callable[[int], Any],
    masks: np.ndarray | None = None,
    metrics: dict[str, Any] | None = None,
    color_range: tuple[float, float] = (0.0, 1.0),
    model: str | None = None,
    max_top: int = 12,
    max_errors: int = 8,
    thumb_size: int = THUMB_SIZE,
    max_embedded_bytes: int = MAX_EMBEDDED_BYTES,
) -> Path:
    """Write ``RUN/report/report.html`` and its PNGs; return the HTML path.

    ``scores``/``labels``/``paths``/``maps`` (N, H, W) cover the whole test split in one
    order; ``images(i)`` returns test image ``i`` ((3, H, W) in [0, 1]) and is called only
    for the images shown; ``masks`` (N, H, W) or None when the split has none.
    ``metrics`` is laid over ``RUN/metrics.json`` (either may be missing).  At most ``max_top`` most anomalous
    images and ``max_errors`` false alarms and misses each are embedded, and their PNGs
    together are kept under ``max_embedded_bytes`` (palette PNGs first, then fewer
    images), so the file stays small whatever the size of the test split.
    """
    run = Path(run_dir)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1).astype(int)
    if not (len(s) == len(y) == len(paths) == len(maps)):
        raise DataError(
            f"report: scores, labels, paths and maps differ in length ({len(s)}, {len(y)}, {len(paths)}, {len(maps)})"
        )
    if len(s) == 0:
        raise DataError("report: the test split is empty")
    if masks is not None and len(masks) != len(s):
        raise DataError(f"report: {len(masks)} masks for {len(s)} images")
    m = {**_read_json(run / "metrics.json"), **(metrics or {})}
    info = _read_json(run / "run.json")
    config = _read_json(run / "model" / "config.json")
    threshold = _as_float(m.get("threshold", config.get("threshold")))
    basis = str(m.get("threshold_basis") or "")
    if threshold is not None and not basis:
        q = (config.get("detector") or {}).get("threshold_quantile")
        basis = (
            f"quantile {q} of the held-out normal scores at training time" if q is not None else "not stated by the run"
        )
    p_values = _read_p_values(run, paths)

    out = run / REPORT_DIR
    (out / "images").mkdir(parents=True, exist_ok=True)
    for old in (out / "images").glob("*.png"):  # images of an earlier report of this run
        old.unlink()

    # figures
    figures: list[tuple[str, Path]] = []
    notes: list[str] = []
    two_classes = 0 < int(y.sum()) < len(y)
    if two_classes:
        figures.append(("ROC curve", _roc_figure(y, s, threshold, out / "roc.png")))
        figures.append(("Precision-recall curve", _pr_figure(y, s, threshold, out / "pr.png")))
    else:
        for stale in ("roc.png", "pr.png"):
            (out / stale).unlink(missing_ok=True)
        only = "normal" if int(y.sum()) == 0 else "anomalous"
        notes.append(
            f"The test split holds only {only} images, so ROC and precision-recall curves (and the "
            "image AUROC / AUPR) are undefined and are not drawn."
        )
    hist = ("Score histogram", _histogram_figure(y, s, threshold, out / "scores.png"))
    nav = [("metrics", "Metrics"), ("curves", "Curves")]

    # galleries
    vmin, vmax = float(color_range[0]), float(color_range[1])
    galleries = _galleries(y, s, threshold, max_top, max_errors)
    rank = {int(i): r + 1 for r, i in enumerate(np.argsort(-s, kind="stable"))}
    panels: dict[int, np.ndarray] = {}
    pngs: dict[int, bytes] = {}
    for g in galleries:
        for i in g.indices:
            if i not in panels:
                mask = masks[i] if masks is not None and y[i] == 1 else None
                panels[i] = overlay_panel(images(i), np.asarray(maps[i]), vmin, vmax, mask=mask, size=thumb_size)
                pngs[i] = _png_bytes(panels[i])
    omitted = _fit_budget(galleries, panels, pngs, max_embedded_bytes)
    cards: dict[int, str] = {}
    for i, png in pngs.items():
        if not any(i in g.indices for g in galleries):
            continue
        stem = f"{rank[i]:04d}_{'anomalous' if y[i] else 'normal'}_{Path(paths[i]).parent.name}_{Path(paths[i]).stem}"
        (out / "images" / f"{stem}.png").write_bytes(png)
        cards[i] = _card(
            i,
            rank[i],
            png,
            str(paths[i]),
            int(y[i]),
            float(s[i]),
            None if p_values is None else float(p_values[i]),
            threshold,
        )

    # page
    has_masks = masks is not None
    data = info.get("data") or {}
    model_name = model or info.get("model") or config.get("model") or "?"
    dataset = " / ".join(
        str(x) for x in (data.get("dataset") or m.get("dataset"), data.get("category") or m.get("category")) if x
    )
    title = f"{model_name} on {dataset}" if dataset else str(model_name)
    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    mc = config.get("model_config") or {}
    sub = [f"model <b>{html.escape(str(model_name))}</b>"]
    if mc.get("backbone"):
        sub.append(f"backbone <b>{html.escape(str(mc['backbone']))}</b>")
    size = (config.get("detector") or {}).get("image_size") or data.get("image_size")
    if size:
        sub.append(f"{int(size)} px")
    if dataset:
        sub.append(f"data <b>{html.escape(dataset)}</b>")
    if info.get("train_images"):
        sub.append(f"trained on {int(info['train_images'])} images")
    sub.append(f"reported {when}")
    left, right = _metrics_rows(m, y, s, threshold, basis, has_masks)

    n_normal, n_anom = int((y == 0).sum()), int((y == 1).sum())
    kpis = [("Image AUROC", _fmt(m.get("image_auroc"), 3))]
    if has_masks:
        kpis.append(("Pixel AUROC", _fmt(m.get("pixel_auroc"), 3)))
    if threshold is not None:
        pred = s > threshold
        kpis.append(("False-alarm rate", "—" if not n_normal else f"{100 * pred[y == 0].mean():.1f}%"))
        kpis.append(("Detection rate", "—" if not n_anom else f"{100 * pred[y == 1].mean():.1f}%"))
    kpis.append(("Test images", f"{len(y)}"))
    kpi_html = "".join(
        f"<div class='kpi'><div class='v'>{v}</div><div class='k'>{html.escape(k)}</div></div>" for k, v in kpis
    )

    figures.append(hist)
    fig_html = "".join(f"<img alt='{html.escape(t)}' src='{_data_uri(p.read_bytes())}'>" for t, p in figures)
    note_html = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    curves = (
        f"<section id='curves'><h2>Curves and scores</h2><p class='intro'>Image-level ranking of the test "
        f"split. The dot marks the saved threshold on the curves; the dashed line marks it among the "
        f"scores.</p><div class='figs{'' if two_classes else ' one'}'>{fig_html}</div>{note_html}</section>"
    )

    legend = (
        f"<div class='legend'>heat map <span>{vmin:.3g}</span><img alt='colour scale' "
        f"src='{_data_uri(_colorbar_png())}'><span>{vmax:.3g} and above</span>"
        + (" · white outline: ground-truth defect" if has_masks else "")
        + "</div>"
    )
    pv_note = "" if p_values is not None else " P-values are not shown: this run's scores.csv has none."
    if omitted:
        pv_note += f" {omitted} thumbnail(s) were left out to keep this file small."
    gallery_html = []
    for g in galleries:
        shown = (
            f" Showing {len(g.indices)} of {g.total}."
            if g.total > len(g.indices)
            else (f" {g.total} in all." if g.key != "top" else "")
        )
        body = (
            ("<div class='grid'>" + "".join(cards[i] for i in g.indices) + "</div>")
            if g.indices
            else f"<p class='note'>{html.escape(g.empty_note)}</p>"
        )
        intro = html.escape(g.intro + shown) + (html.escape(pv_note) if g.key == "top" else "")
        nav.append((g.key, f"{g.title.replace(' at the threshold', '')} ({g.total})"))
        gallery_html.append(
            f"<section id='{g.key}'><h2>{html.escape(g.title)}</h2>"
            f"<p class='intro'>{intro}</p>{legend if g.indices else ''}{body}</section>"
        )

    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reconad report: {html.escape(title)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>Anomaly detection report: {html.escape(title)}</h1>
<div class="sub">{" &nbsp;·&nbsp; ".join(sub)}</div>
<div class="sub">run <b>{html.escape(str(run.resolve()))}</b></div>
<nav>{"".join(f"<a href='#{k}'>{html.escape(t)}</a>" for k, t in nav)}</nav></header>
<main>
<div class="kpis">{kpi_html}</div>
<section id="metrics"><h2>Metrics</h2><p class="intro">Test split: {n_normal} normal and {n_anom} anomalous
images. Rates at the threshold count an image as flagged when its score is above the threshold.</p>
<div class="cols"><div>{left}</div><div>{right}</div></div></section>
{curves}
{"".join(gallery_html)}
</main>
<footer>reconad {html.escape(str(config.get("reconad_version", "")))} · generated {when}</footer>
</body></html>
"""
    path = out / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path
