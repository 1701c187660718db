"""Tests for the HTML report: self-contained (every image embedded, no outside link),
every section present, the threshold's false alarms / misses picked right, graceful
degradation (one class, no masks, no threshold, no p-values), a bounded file size on a
big test split, and the `reconad test` / `reconad report` commands on a tiny run.

Most tests call ``write_report`` on synthetic arrays (no model); one module-scoped tiny
run (64x64, 1 epoch) covers the CLI hook.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reconad.errors import DataError
from reconad.report import REPORT_DIR, report_path, write_report
from reconad.visualize import draw_outline, mask_outline, overlay_panel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Page(HTMLParser):
    """Every tag, id, src and href of a page, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.ids: set[str] = set()
        self.srcs: list[str] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []
        self.captions = 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if "src" in a:
            self.srcs.append(a["src"])
        if "href" in a:
            self.hrefs.append(a["href"])
        if tag == "figure":
            self.captions += 1

    def handle_data(self, data):
        self.text.append(data)


def _parse(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    page.all_text = " ".join(" ".join(page.text).split())
    return page


def _assert_self_contained(page: _Page, html: str) -> None:
    assert page.srcs, "no image at all"
    for src in page.srcs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    for href in page.hrefs:  # only links inside the page, to sections that exist
        assert href.startswith("#") and href[1:] in page.ids, href
    for tag in ("script", "link", "iframe", "object", "embed"):
        assert tag not in page.tags, tag
    assert "http://" not in html and "https://" not in html and "url(" not in html


def _synthetic(n_normal: int, n_anom: int, size: int = 48, seed: int = 0, noise: float = 0.02):
    """Images, maps and masks where anomalies are bright squares the map lights up."""
    rng = np.random.default_rng(seed)
    n = n_normal + n_anom
    labels = np.array([0] * n_normal + [1] * n_anom)
    images = np.clip(0.5 + noise * rng.standard_normal((n, 3, size, size)), 0, 1).astype(np.float32)
    masks = np.zeros((n, size, size), dtype=bool)
    maps = np.abs(0.1 * rng.standard_normal((n, size, size))).astype(np.float32)
    for i in range(n_normal, n):
        r, c = rng.integers(4, size - 16, size=2)
        masks[i, r : r + 10, c : c + 10] = True
        images[i, :, r : r + 10, c : c + 10] = 0.95
        maps[i][masks[i]] += 1.0
    scores = maps.reshape(n, -1).max(axis=1).astype(np.float64)
    paths = [f"/data/test/{'good' if y == 0 else 'hole'}/{i:03d}.png" for i, y in enumerate(labels)]
    return scores, labels, images, maps, masks, paths


def _write_run_files(run: Path, scores, labels, paths, threshold, basis=None, p_values=None) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    (run / "run.json").write_text(
        json.dumps({"model": "hfr", "data": {"dataset": "mvtec", "category": "brick"}, "train_images": 16})
    )
    metrics = {
        "image_auroc": 0.9,
        "image_aupr": 0.8,
        "image_f1_max": 0.7,
        "pixel_auroc": 0.95,
        "pro": 0.6,
        "n_test": len(labels),
        "n_anomalous": int(np.sum(labels)),
        "threshold": threshold,
    }
    if basis is not None:
        metrics["threshold_basis"] = basis
    (run / "metrics.json").write_text(json.dumps(metrics))
    with open(run / "scores.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "score", "label", "predicted"] + (["p_value"] if p_values is not None else []))
        for k, (p, s, y) in enumerate(zip(paths, scores, labels)):
            row = [p, f"{s:.6f}", int(y), int(threshold is not None and s > threshold)]
            w.writerow(row + ([f"{p_values[k]:.6f}"] if p_values is not None else []))
    return metrics


def _report(run: Path, scores, labels, images, maps, masks, paths, **kw) -> Path:
    return write_report(
        run,
        scores=scores,
        labels=labels,
        paths=paths,
        maps=maps,
        images=lambda i: images[i],
        masks=masks,
        color_range=(0.0, 1.0),
        **kw,
    )


# ------------------------------------------------------------------ the page


def test_report_is_self_contained_with_every_section(tmp_path):
    scores, labels, images, maps, masks, paths = _synthetic(10, 8)
    # Two normals above the threshold (false alarms) and one anomaly below it (a miss).
    scores = scores.copy()
    scores[[0, 1]] = 2.0 + np.array([0.2, 0.1])
    scores[17] = 0.05
    threshold = 0.9
    p_values = np.linspace(0.01, 1.0, len(scores))
    run = tmp_path / "run"
    _write_run_files(
        run, scores, labels, paths, threshold, basis="fpr=0.05 on 76 held-out normal images", p_values=p_values
    )
    path = _report(run, scores, labels, images, maps, masks, paths, max_top=5)
    assert path == report_path(run) == run / "report" / "report.html"
    html = path.read_text(encoding="utf-8")
    page = _parse(path)
    _assert_self_contained(page, html)
    for section in ("metrics", "curves", "top", "false-alarms", "misses"):
        assert section in page.ids, section
    text = page.all_text
    for words in (
        "Image AUROC",
        "Pixel AUROC",
        "PRO",
        "fpr=0.05 on 76 held-out normal images",
        "20.0% (2 of 10)",
        "87.5% (7 of 8)",
        "p-value",
        "hfr",
        "mvtec / brick",
    ):
        assert words in text, words
    # 3 figures + colour legends; 5 top + 2 false alarms + 1 miss cards, figures written beside the page.
    assert page.captions == 5 + 2 + 1
    for name in ("roc.png", "pr.png", "scores.png"):
        assert Image.open(run / REPORT_DIR / name).format == "PNG"
    # The two false alarms (the top two scores) are also in the top 5: one PNG file each.
    assert len(list((run / REPORT_DIR / "images").glob("*.png"))) == 5 + 1
    # False alarms are the normal images 0 and 1, highest first; the miss is image 17.
    fa = html[html.index("id='false-alarms'") : html.index("id='misses'")]
    assert fa.index("good/000.png") < fa.index("good/001.png")
    misses = html[html.index("id='misses'") :]
    assert "hole/017.png" in misses and f"{p_values[17]:.3g}" in misses


def test_report_of_a_one_class_test_split_skips_the_curves(tmp_path):
    scores, labels, images, maps, masks, paths = _synthetic(6, 0)
    run = tmp_path / "run"
    _write_run_files(run, scores, labels, paths, threshold=float(np.median(scores)))
    path = _report(run, scores, labels, images, maps, None, paths)
    page = _parse(path)
    _assert_self_contained(page, path.read_text())
    assert "only normal images" in page.all_text
    assert not (run / REPORT_DIR / "roc.png").exists() and not (run / REPORT_DIR / "pr.png").exists()
    assert (run / REPORT_DIR / "scores.png").is_file()
    assert "The test split has no anomalous images." in page.all_text
    assert page.captions == 6 + 3  # all six in the top gallery, the three above the median again as false alarms


def test_report_without_masks_threshold_or_p_values_degrades(tmp_path):
    scores, labels, images, maps, _, paths = _synthetic(5, 5)
    run = tmp_path / "run"
    run.mkdir()  # no metrics.json, run.json or scores.csv at all
    path = _report(run, scores, labels, images, maps, None, paths, metrics={"image_auroc": 1.0})
    page = _parse(path)
    _assert_self_contained(page, path.read_text())
    text = page.all_text
    assert "not available: the test split has no masks" in text
    assert "Pixel AUROC" not in text and "ground-truth" not in text
    assert "none saved with the model" in text and "no threshold" in text
    assert "P-values are not shown" in text
    assert page.captions == 10  # the whole (small) split in the top gallery, nothing else


@pytest.mark.slow
def test_report_of_a_big_test_split_is_capped(tmp_path):
    # 240 noisy 256-px images: PNG compresses noise badly, so this is the worst case.
    n, size = 240, 256
    rng = np.random.default_rng(1)
    labels = (np.arange(n) % 3 == 0).astype(int)
    scores = rng.random(n) + labels
    maps = rng.random((n, size, size), dtype=np.float32)
    paths = [f"/d/test/{'hole' if y else 'good'}/{i:03d}.png" for i, y in enumerate(labels)]
    loaded = []

    def image(i):
        loaded.append(i)
        return np.random.default_rng(i).random((3, size, size), dtype=np.float32)

    run = tmp_path / "run"
    run.mkdir()
    path = write_report(
        run, scores=scores, labels=labels, paths=paths, maps=maps, images=image, metrics={"threshold": 0.8}
    )
    assert path.stat().st_size < 5_000_000
    page = _parse(path)
    _assert_self_contained(page, path.read_text())
    assert 0 < page.captions <= 12 + 8 + 8
    assert len(set(loaded)) == len(loaded) <= 28  # only the shown images are read, each once
    assert "Showing" in page.all_text


def test_report_refuses_arrays_of_different_lengths(tmp_path):
    scores, labels, images, maps, masks, paths = _synthetic(3, 3)
    with pytest.raises(DataError, match="differ in length"):
        _report(tmp_path, scores[:-1], labels, images, maps, masks, paths)


# ------------------------------------------------------------- visualize


def test_mask_outline_is_the_border_of_the_region():
    mask = np.zeros((10, 10), dtype=bool)
    mask[2:7, 3:8] = True
    ring = mask_outline(mask)
    assert ring[2, 3] and ring[6, 7] and ring[4, 3] and not ring[4, 5] and not ring[0, 0]
    assert ring.sum() == 5 * 5 - 3 * 3
    assert not mask_outline(np.zeros((4, 4))).any()
    rgb = draw_outline(np.zeros((10, 10, 3), dtype=np.uint8), mask, (255, 0, 0))
    assert (rgb[ring] == (255, 0, 0)).all() and (rgb[~ring] == 0).all()


def test_overlay_panel_shows_the_image_beside_its_heat_map():
    img = np.full((3, 32, 32), 0.5, dtype=np.float32)
    amap = np.zeros((32, 32))
    amap[:, 16:] = 1.0
    panel = overlay_panel(img, amap, 0.0, 1.0, size=16, gap=2)
    assert panel.shape == (16, 34, 3) and panel.dtype == np.uint8
    assert (panel[:, :16] == 127).all()  # the plain image, unchanged
    heat = panel[:, 18:].astype(int)
    assert heat[:, -1, 0].mean() > heat[:, 0, 0].mean()  # red where the map is high
    assert heat[:, 0, 2].mean() > heat[:, -1, 2].mean()  # blue where it is low


# ----------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def tiny_run(single_thread, tiny_mvtec, tmp_path_factory) -> Path:
    from reconad.cli import main

    out = tmp_path_factory.mktemp("report") / "run"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main(
                [
                    "train",
                    "--dataset",
                    "mvtec",
                    "--root",
                    str(tiny_mvtec),
                    "--category",
                    "brick",
                    "--out",
                    str(out),
                    "--image-size",
                    "64",
                    "--epochs",
                    "1",
                    "--quiet",
                ]
            )
            == 0
        )
    return out


@pytest.mark.slow
def test_test_command_writes_the_report_from_one_scoring_pass(tiny_run, capsys, monkeypatch):
    from reconad.cli import main
    from reconad.inference import Pipeline

    calls = []
    original = Pipeline.iter_dataset  # every scoring pass over a dataset (test, Detector) goes through it

    def counting(self, *a, **kw):
        calls.append(1)
        return original(self, *a, **kw)

    monkeypatch.setattr(Pipeline, "iter_dataset", counting)
    assert main(["test", str(tiny_run), "--heatmaps", "0", "--quiet"]) == 0
    assert len(calls) == 1
    out = capsys.readouterr().out
    path = report_path(tiny_run)
    assert f"report written to {path}" in out
    page = _parse(path)
    _assert_self_contained(page, path.read_text())
    for section in ("metrics", "curves", "top", "false-alarms", "misses"):
        assert section in page.ids
    assert "Pixel AUROC" in page.all_text and "of 4)" in page.all_text
    assert (tiny_run / REPORT_DIR / "roc.png").is_file()

    path.unlink()
    assert main(["test", str(tiny_run), "--heatmaps", "0", "--no-report", "--quiet"]) == 0
    assert not path.exists() and "report written" not in capsys.readouterr().out

    assert main(["report", str(tiny_run), "--quiet"]) == 0
    assert path.is_file() and f"report written to {path}" in capsys.readouterr().out


def test_report_of_an_auto_run_shows_the_candidates_and_the_choice(tmp_path):
    """``model="auto"``: the report lists every candidate with its synthetic figures, marks the
    pick, and says what a shared training and a failure were; other runs have no such section."""
    scores, labels, images, maps, masks, paths = _synthetic(6, 6)
    run = tmp_path / "run"
    _write_run_files(run, scores, labels, paths, threshold=0.9)
    candidates = [
        {"label": "patchcore", "model": "patchcore", "options": {}, "synthetic_image_auroc": 0.61,
         "synthetic_pixel_auroc": 0.52, "seconds": 7.2},
        {"label": "hfr", "model": "hfr", "options": {}, "synthetic_image_auroc": 0.83,
         "synthetic_pixel_auroc": 0.71, "seconds": 32.1},
        {"label": "hfr-patch", "model": "hfr", "options": {"hybrid": "patch"}, "synthetic_image_auroc": 0.79,
         "synthetic_pixel_auroc": 0.64, "seconds": 13.2, "trained_with": "hfr"},
        {"label": "broken", "model": "hfr", "options": {"width": 2}, "synthetic_image_auroc": None,
         "synthetic_pixel_auroc": None, "error": "width must be >= 8"},
    ]  # fmt: skip
    selection = {"chosen": "hfr", "rule": "best synthetic image AUROC", "candidates": candidates,
                 "validation": {"normals": 12, "defects": 24}}  # fmt: skip
    (run / "model").mkdir()
    (run / "model" / "config.json").write_text(json.dumps({"model": "hfr", "selection": selection}))
    path = _report(run, scores, labels, images, maps, masks, paths)
    page = _parse(path)
    _assert_self_contained(page, path.read_text())
    assert "choice" in page.ids
    for words in ("model=auto chose hfr", "12 held-out normal images and 24 synthetic defects",
                  "hfr (hybrid=patch)", "weights of hfr", "width must be >= 8", "0.8300"):  # fmt: skip
        assert words in page.all_text, words
    html = path.read_text()
    chosen_row = html[html.index("<tr class='chosen'>") :]
    assert chosen_row.index("<td>hfr</td>") < chosen_row.index("</tr>")
    (run / "model" / "config.json").write_text(json.dumps({"model": "hfr"}))
    assert "choice" not in _parse(_report(run, scores, labels, images, maps, masks, paths)).ids
