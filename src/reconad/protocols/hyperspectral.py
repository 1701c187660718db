"""``hyperspectral``: per-scene unsupervised anomaly detection on hyperspectral scenes.

``reconad benchmark hyperspectral --root ../shared/data/hyperspectral
[--scenes abu-airport-1,sandiego] --model hadgan``:

* each scene (``.mat`` or ENVI file in ``--root``) is its own problem: the model trains on
  that scene's pixels (as spectra, scaled to [0, 1] over the cube), without labels, and
  scores the same pixels; pixel AUROC against the scene's ``map``;
* the global RX detector (``rx``) always runs beside the model(s) as the classic baseline;
* rows: every scene, the mean over the ABU scenes (file names ``abu-*``), and any other
  scene (HYDICE, San Diego) on its own row; seconds per scene and model;
* a PNG per scene: false-colour composite, ground truth, and each model's map.

Published AUROCs for the same scenes are listed beside, quoted, never reproduced here.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.atomic import atomic_path
from reconad.clips import model_device
from reconad.data.hyperspectral import Scene, list_scenes, load_scene
from reconad.errors import DataError
from reconad.metrics import image_auroc
from reconad.protocols.results import Published, Results, write_results
from reconad.protocols.settings import HYPERSPECTRAL_BASELINE, HyperspectralSettings
from reconad.protocols.tabular import torch_threads

__all__ = ["BASELINE", "PUBLISHED", "run", "scene_scores"]

BASELINE = HYPERSPECTRAL_BASELINE
_UNCONFIRMED = "its per-scene AUROCs could not be confirmed with the sources at hand here, so none is quoted"
#: Published figures (AUROC), quoted from the papers; NOT reproduced here.
PUBLISHED: list[Published] = [
    Published("global RX", "Kang et al., IEEE TGRS 55(10), 2017 (the ABU scenes' source)", None, "AUROC", _UNCONFIRMED),
    Published("HADGAN", "Jiang et al., IEEE TGRS 58(7), 2020", None, "AUROC", _UNCONFIRMED),
]


def scene_scores(det: Any, scene: Scene) -> np.ndarray:
    """Per-pixel scores (H, W) of a fitted Detector's model on the whole scene (one batch,
    so that models with a spatial detector, HADGAN, see the image)."""
    model = det.model_
    model.eval()
    with torch.inference_mode():
        out = model.predict_step(scene.batch().to(model_device(model)))
    return scene.to_map(out.scores.float().cpu().numpy())


def _fit(name: str, scene: Scene, options: dict[str, Any]) -> Any:
    from reconad.detector import Detector

    det = Detector(name, **options)
    with warnings.catch_warnings():  # every pixel trains, so the threshold comes from training scores
        warnings.filterwarnings("ignore", message="no held-out normal data")
        det.fit(scene.dataset())
    return det


def _false_colour(scene: Scene) -> np.ndarray:
    """Three bands (at 3/4, 1/2 and 1/4 of the range) stretched to [0, 1] (2-98 percentiles)."""
    b = scene.bands
    rgb = scene.cube[:, :, [min(b - 1, 3 * b // 4), b // 2, b // 4]].astype(np.float64)
    lo, hi = np.percentile(rgb, 2, axis=(0, 1)), np.percentile(rgb, 98, axis=(0, 1))
    return np.clip((rgb - lo) / np.maximum(hi - lo, 1e-12), 0, 1)


def _save_maps(path: Path, scene: Scene, maps: dict[str, np.ndarray], aurocs: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: list[tuple[str, np.ndarray, str | None]] = [("false colour", _false_colour(scene), None)]
    if scene.gt is not None:
        panels.append(("ground truth", scene.gt.astype(float), "gray"))
    panels += [(f"{m} (AUROC {aurocs.get(m, float('nan')):.3f})", a, "jet") for m, a in maps.items()]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4))
    for ax, (title, img, cmap) in zip(np.atleast_1d(axes), panels):
        ax.imshow(img, cmap=cmap)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.suptitle(scene.name)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)


def _run_scene(
    s: HyperspectralSettings, path: Path, models: list[str], opts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    scene = load_scene(path)
    if scene.gt is None:
        raise DataError(f"{path}: no ground-truth map, so no AUROC")
    y = scene.gt.reshape(-1).astype(int)
    row: dict[str, Any] = {"scene": scene.name, "shape": [*scene.shape, scene.bands], "anomalous": int(y.sum())}
    maps = {}
    for m in models:
        t0 = time.perf_counter()
        det = _fit(m, scene, opts[m])
        maps[m] = scene_scores(det, scene)
        row[f"{m}_seconds"] = time.perf_counter() - t0
        row[m] = image_auroc(y, maps[m].reshape(-1))
    if not 0 < int(y.sum()) < y.size:  # AUROC needs both classes: null in results.json, and why
        which = "no anomalous pixel" if y.sum() == 0 else "no normal pixel"
        row["undefined"] = dict.fromkeys(models, f"pixel AUROC undefined: the scene's ground-truth map has {which}")
    if s.maps:
        _save_maps(Path(s.out) / "maps" / f"{scene.name}.png", scene, maps, {m: row[m] for m in models})
    if s.echo:
        shown = ", ".join(f"{m} {row[m]:.4f} ({row[m + '_seconds']:.0f}s)" for m in models)
        print(f"{scene.name} {scene.shape[0]}x{scene.shape[1]}x{scene.bands}: {shown}", flush=True)
    return row


def summary_rows(rows: list[dict[str, Any]], models: list[str]) -> list[dict[str, Any]]:
    """The ABU mean (scenes named ``abu-*``) and every other scene on its own row."""
    out = []
    abu = [r for r in rows if r["scene"].lower().startswith("abu")]
    if abu:
        mean: dict[str, Any] = {"scene": f"ABU mean ({len(abu)} scenes)"}
        mean.update({m: float(np.mean([r[m] for r in abu])) for m in models})
        out.append(mean)
    out += [{"scene": r["scene"], **{m: r[m] for m in models}} for r in rows if r not in abu]
    return out


def _table(rows: list[dict[str, Any]], models: list[str], seconds: bool) -> str:
    head = "| scene | " + " | ".join(models) + (" | " + " | ".join(f"{m} s" for m in models) if seconds else "") + " |"
    lines = [head, "|---|" + "---|" * (len(models) * (2 if seconds else 1))]
    for r in rows:
        cells = [f"{r[m]:.4f}" for m in models] + ([f"{r[m + '_seconds']:.1f}" for m in models] if seconds else [])
        lines.append(f"| {r['scene']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _body(rows: list[dict[str, Any]], models: list[str]) -> str:
    return "\n".join(
        [
            "Per scene, unsupervised: each model trains on the scene's own pixels (no labels) and scores "
            "them; pixel AUROC against the scene's map. The global RX detector runs beside as the baseline.",
            "",
            "## Summary",
            "",
            _table(summary_rows(rows, models), models, seconds=False),
            "",
            "## Every scene (AUROC, then seconds to fit and score)",
            "",
            _table(rows, models, seconds=True),
            "",
        ]
    )


def run(settings: HyperspectralSettings) -> dict[str, Any]:
    """Every scene with every model (and RX); results.md/json and a map PNG per scene."""
    s = settings  # checked when it was made (HyperspectralSettings.check)
    assert s.root is not None
    paths = list_scenes(s.root, s.scenes)
    models = s.run_models()
    threads = torch.get_num_threads() if s.threads is None else int(s.threads)
    opts = s.detector_options()  # checked when the settings were made
    rows: list[dict[str, Any]] = []
    doc: dict[str, Any] = {}
    with torch_threads(threads):
        for path in paths:
            rows.append(_run_scene(s, path, models, opts))
            data = f"{len(rows)} scene(s) from {s.root}: " + ", ".join(
                f"{r['scene']} {'x'.join(map(str, r['shape']))} ({r['anomalous']} anomalous pixels)" for r in rows
            )
            settings_doc = {k: v for k, v in asdict(s).items() if k not in ("command", "echo")}
            payload = {"models": models, "rows": rows, "summary": summary_rows(rows, models), "threads": threads}
            doc = write_results(
                s.out,
                Results("hyperspectral", "Hyperspectral anomaly detection", data, s.command, settings_doc, payload,
                        _body(rows, models), PUBLISHED, PUBLISHED_NOTE),
            )  # fmt: skip
    if s.echo:
        print((Path(s.out) / "results.md").read_text())
    return doc


PUBLISHED_NOTE = (
    "Published figures come from the papers' own preprocessing and scene versions; shown for orientation only."
)
