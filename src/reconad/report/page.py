"""The report page: reads the run's files, lays out metrics, curves and galleries as one HTML file."""

from __future__ import annotations

import csv
import html
import json
import math
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from reconad.atomic import write_text
from reconad.errors import DataError
from reconad.report.figures import colorbar_png, data_uri, histogram_figure, pr_figure, roc_figure
from reconad.report.gallery import Gallery, GalleryInputs, gallery_cards, select_galleries

REPORT_DIR = "report"
REPORT_FILE = "report.html"
#: panel size (pixels, longer side) of the gallery thumbnails
THUMB_SIZE = 192
#: budget of the embedded gallery PNGs (bytes, before base64): keeps report.html under ~5 MB
MAX_EMBEDDED_BYTES = 3_500_000


def report_path(run: str | os.PathLike) -> Path:
    """Where :func:`write_report` puts the HTML file of ``run``."""
    return Path(run) / REPORT_DIR / REPORT_FILE


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _run_info(run: Path) -> dict[str, Any]:
    """The run's record (reconad.inference.read_run_info), {} where missing or damaged."""
    from reconad.errors import ModelFileError
    from reconad.inference import read_run_info

    try:
        return read_run_info(run) or {}
    except ModelFileError:
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


def _fmt(value: Any, digits: int = 4) -> str:
    v = _as_float(value)
    if v is None:
        return "—"
    return f"{v:.{digits}f}"


def _rate(k: int, n: int) -> str:
    return "—" if n == 0 else f"{100.0 * k / n:.1f}% <span class='muted'>({k} of {n})</span>"


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
table.metrics tr.chosen td { font-weight:600; }
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


def _row(k: str, v: str) -> str:
    return f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>"


def _group(title: str) -> str:
    return f"<tr class='group'><th colspan='2'>{html.escape(title)}</th></tr>"


def _quality_rows(m: dict[str, Any], y: np.ndarray, has_masks: bool) -> list[str]:
    """Detection, localization and test-split rows."""
    row, group = _row, _group
    n_normal, n_anom = int((y == 0).sum()), int((y == 1).sum())
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
    return left


def _operating_rows(m: dict[str, Any], y: np.ndarray, s: np.ndarray, threshold: float | None, basis: str) -> list[str]:
    """The threshold, its basis, the realised rates and the test throughput."""
    row, group = _row, _group
    n_normal, n_anom = int((y == 0).sum()), int((y == 1).sum())
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
            *(
                [row("Expected against measured", html.escape(str(m["expected_vs_measured"])))]
                if m.get("expected_vs_measured")
                else []
            ),
            *(
                [row("What the calibration gives", html.escape(str(m["calibration"]["expectation_note"])))]
                if (m.get("calibration") or {}).get("expectation_note")
                else []
            ),
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
    return right


def _check_inputs(s: np.ndarray, y: np.ndarray, paths: Sequence[str], maps: Any, masks: Any) -> None:
    if not (len(s) == len(y) == len(paths) == len(maps)):
        raise DataError(
            f"report: scores, labels, paths and maps differ in length ({len(s)}, {len(y)}, {len(paths)}, {len(maps)})"
        )
    if len(s) == 0:
        raise DataError("report: the test split is empty")
    if masks is not None and len(masks) != len(s):
        raise DataError(f"report: {len(masks)} masks for {len(s)} images")


def _threshold_and_basis(m: dict[str, Any], config: dict[str, Any]) -> tuple[float | None, str]:
    threshold = _as_float(m.get("threshold", config.get("threshold")))
    basis = str(m.get("threshold_basis") or "")
    if threshold is not None and not basis:
        q = (config.get("detector") or {}).get("threshold_quantile")
        basis = (
            f"quantile {q} of the held-out normal scores at training time" if q is not None else "not stated by the run"
        )
    return threshold, basis


def _curves_section(out: Path, y: np.ndarray, s: np.ndarray, threshold: float | None) -> str:
    """ROC / PR curves (when both classes are present) and the score histogram, as PNGs and HTML."""
    figures: list[tuple[str, Path]] = []
    notes: list[str] = []
    two_classes = 0 < int(y.sum()) < len(y)
    if two_classes:
        figures.append(("ROC curve", roc_figure(y, s, threshold, out / "roc.png")))
        figures.append(("Precision-recall curve", pr_figure(y, s, threshold, out / "pr.png")))
    else:
        for stale in ("roc.png", "pr.png"):
            (out / stale).unlink(missing_ok=True)
        only = "normal" if int(y.sum()) == 0 else "anomalous"
        notes.append(
            f"The test split holds only {only} images, so ROC and precision-recall curves (and the "
            "image AUROC / AUPR) are undefined and are not drawn."
        )
    figures.append(("Score histogram", histogram_figure(y, s, threshold, out / "scores.png")))
    fig_html = "".join(f"<img alt='{html.escape(t)}' src='{data_uri(p.read_bytes())}'>" for t, p in figures)
    note_html = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)
    return (
        f"<section id='curves'><h2>Curves and scores</h2><p class='intro'>Image-level ranking of the test "
        f"split. The dot marks the saved threshold on the curves; the dashed line marks it among the "
        f"scores.</p><div class='figs{'' if two_classes else ' one'}'>{fig_html}</div>{note_html}</section>"
    )


def _gallery_sections(
    galleries: list[Gallery], cards: dict[int, str], legend: str, top_note: str
) -> tuple[str, list[tuple[str, str]]]:
    """One section per gallery, and its navigation entries."""
    parts, nav = [], []
    for g in galleries:
        if g.total > len(g.indices):
            shown = f" Showing {len(g.indices)} of {g.total}."
        else:
            shown = f" {g.total} in all." if g.key != "top" else ""
        if g.indices:
            body = "<div class='grid'>" + "".join(cards[i] for i in g.indices) + "</div>"
        else:
            body = f"<p class='note'>{html.escape(g.empty_note)}</p>"
        intro = html.escape(g.intro + shown) + (html.escape(top_note) if g.key == "top" else "")
        nav.append((g.key, f"{g.title.replace(' at the threshold', '')} ({g.total})"))
        parts.append(
            f"<section id='{g.key}'><h2>{html.escape(g.title)}</h2>"
            f"<p class='intro'>{intro}</p>{legend if g.indices else ''}{body}</section>"
        )
    return "".join(parts), nav


def _subtitle(m: dict[str, Any], info: dict[str, Any], config: dict[str, Any], model: str | None) -> tuple[str, str]:
    """(title, subtitle HTML) from the run's own files."""
    data = info.get("data") or {}
    model_name = model or info.get("model") or config.get("model") or "?"
    parts = (data.get("dataset") or m.get("dataset"), data.get("category") or m.get("category"))
    dataset = " / ".join(str(x) for x in parts if x)
    title = f"{model_name} on {dataset}" if dataset else str(model_name)
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
    sub.append(f"reported {datetime.now().strftime('%Y-%m-%d %H:%M')}")
    return title, " &nbsp;·&nbsp; ".join(sub)


def _kpis(m: dict[str, Any], y: np.ndarray, s: np.ndarray, threshold: float | None, has_masks: bool) -> str:
    n_normal, n_anom = int((y == 0).sum()), int((y == 1).sum())
    kpis = [("Image AUROC", _fmt(m.get("image_auroc"), 3))]
    if has_masks:
        kpis.append(("Pixel AUROC", _fmt(m.get("pixel_auroc"), 3)))
    if threshold is not None:
        pred = s > threshold
        kpis.append(("False-alarm rate", "—" if not n_normal else f"{100 * pred[y == 0].mean():.1f}%"))
        kpis.append(("Detection rate", "—" if not n_anom else f"{100 * pred[y == 1].mean():.1f}%"))
    kpis.append(("Test images", f"{len(y)}"))
    return "".join(
        f"<div class='kpi'><div class='v'>{v}</div><div class='k'>{html.escape(k)}</div></div>" for k, v in kpis
    )


def _legend(vmin: float, vmax: float, has_masks: bool) -> str:
    return (
        f"<div class='legend'>heat map <span>{vmin:.3g}</span><img alt='colour scale' "
        f"src='{data_uri(colorbar_png())}'><span>{vmax:.3g} and above</span>"
        + (" · white outline: ground-truth defect" if has_masks else "")
        + "</div>"
    )


def _page(title: str, sub: str, run: Path, nav: list[tuple[str, str]], body: str, version: str) -> str:
    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    links = "".join(f"<a href='#{k}'>{html.escape(t)}</a>" for k, t in nav)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>reconad report: {html.escape(title)}</title>
<style>{CSS}</style></head>
<body>
<header><h1>Anomaly detection report: {html.escape(title)}</h1>
<div class="sub">{sub}</div>
<div class="sub">run <b>{html.escape(str(run.resolve()))}</b></div>
<nav>{links}</nav></header>
<main>
{body}
</main>
<footer>reconad {html.escape(version)} · generated {when}</footer>
</body></html>
"""


def _metrics_section(
    m: dict[str, Any], y: np.ndarray, s: np.ndarray, threshold: float | None, basis: str, has_masks: bool
) -> str:
    n_normal, n_anom = int((y == 0).sum()), int((y == 1).sum())
    left = "<table class='metrics'>" + "".join(_quality_rows(m, y, has_masks)) + "</table>"
    right = "<table class='metrics'>" + "".join(_operating_rows(m, y, s, threshold, basis)) + "</table>"
    return (
        f"<div class='kpis'>{_kpis(m, y, s, threshold, has_masks)}</div>\n"
        f"<section id='metrics'><h2>Metrics</h2><p class='intro'>Test split: {n_normal} normal and {n_anom} "
        "anomalous\nimages. Rates at the threshold count an image as flagged when its score is above the "
        f"threshold.</p>\n<div class='cols'><div>{left}</div><div>{right}</div></div></section>"
    )


def _top_note(has_p_values: bool, omitted: int) -> str:
    note = "" if has_p_values else " P-values are not shown: this run's scores.csv has none."
    if omitted:
        note += f" {omitted} thumbnail(s) were left out to keep this file small."
    return note


def _selection_section(config: dict[str, Any]) -> str:
    """``model="auto"``'s choice: every candidate, its synthetic figures, the pick and the rule
    ("" for a run that chose nothing)."""
    sel = config.get("selection")
    if not isinstance(sel, dict) or not sel.get("candidates"):
        return ""
    rows = []
    for c in sel["candidates"]:
        options = ", ".join(f"{k}={v}" for k, v in (c.get("options") or {}).items()) or "defaults"
        note = c.get("error") or (f"weights of {c['trained_with']}" if c.get("trained_with") else "")
        cells = (
            c.get("label"),
            f"{c.get('model')} ({options})",
            _fmt(c.get("synthetic_image_auroc")),
            _fmt(c.get("synthetic_pixel_auroc")),
            _fmt(c.get("seconds"), 1),
            note,
        )
        chosen = " class='chosen'" if c.get("label") == sel.get("chosen") else ""
        rows.append(f"<tr{chosen}>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("candidate", "model", "synthetic image AUROC", "synthetic pixel AUROC",
                                            "seconds", "note"))  # fmt: skip
    val = sel.get("validation") or {}
    return (
        "<section id='choice'><h2>Model choice</h2><p class='intro'>"
        f"model=auto chose <b>{html.escape(str(sel.get('chosen')))}</b> ({html.escape(str(sel.get('rule', '')))}) on "
        f"{val.get('normals', '?')} held-out normal images and {val.get('defects', '?')} synthetic defects. The "
        "synthetic figures rank the candidates; they are no estimate of the AUROC on real defects.</p>"
        f"<table class='metrics'><tr>{head}</tr>{''.join(rows)}</table></section>"
    )


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
    _check_inputs(s, y, paths, maps, masks)
    m = {**_read_json(run / "metrics.json"), **(metrics or {})}
    info, config = _run_info(run), _read_json(run / "model" / "config.json")
    threshold, basis = _threshold_and_basis(m, config)
    p_values = _read_p_values(run, paths)
    out = run / REPORT_DIR
    (out / "images").mkdir(parents=True, exist_ok=True)
    for old in (out / "images").glob("*.png"):  # images of an earlier report of this run
        old.unlink()
    curves = _curves_section(out, y, s, threshold)
    vmin, vmax = float(color_range[0]), float(color_range[1])
    view = GalleryInputs(s, y, paths, maps, images, masks, p_values, threshold, (vmin, vmax))
    galleries = select_galleries(y, s, threshold, max_top, max_errors)
    cards, omitted = gallery_cards(out, galleries, view, thumb_size, max_embedded_bytes)
    has_masks = masks is not None
    gallery_html, gallery_nav = _gallery_sections(
        galleries, cards, _legend(vmin, vmax, has_masks), _top_note(p_values is not None, omitted)
    )
    choice = _selection_section(config)
    body = _metrics_section(m, y, s, threshold, basis, has_masks) + f"\n{choice}\n{curves}\n{gallery_html}"
    title, sub = _subtitle(m, info, config, model)
    nav = [
        ("metrics", "Metrics"),
        *([("choice", "Model choice")] if choice else []),
        ("curves", "Curves"),
        *gallery_nav,
    ]
    path = out / REPORT_FILE
    write_text(path, _page(title, sub, run, nav, body, str(config.get("reconad_version", ""))))
    return path
