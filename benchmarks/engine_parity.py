"""Engine parity over the model registry, as a table (BENCHMARKS.md §18.1).

Every registered image model is fitted for one epoch on the toy of tests/helpers (12 random
16 px images, 32 px where the model needs it), saved through ``Detector.save``; then, on 8
fixed PNGs, each engine it supports is measured against the facade's PyTorch scores and
maps: ``reconad predict --engine torch`` (scores.csv: six decimals), the file of ``reconad
export`` under ONNX Runtime (scores and maps) with ``reconad predict --engine onnx``'s
verdicts, and the int8 export of a trained HFR run (``reconad export --quantize int8``).
Gaps are max |difference| over the reference's range; "bound" is the test's bound
(tests/helpers/parity.py: 1e-5 of the range plus four float32 steps of the magnitude, plus
the CSV's rounding for scores read back from scores.csv).

    OMP_NUM_THREADS=1 python benchmarks/engine_parity.py --out runs/engine-parity
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

# the tests' helpers: one definition of the measurement for the test and this table
from helpers.parity import (
    FittedRun,
    cli,
    fit_run,
    image_models,
    measure,
    onnx_runtime,
    parity_images,
    parity_row,
    table_refusals,
)


def _int8_rows(root: Path) -> list[dict[str, Any]]:
    """HFR trained on the generated textures (32 px, width 8, one epoch), its int8 export against the facade."""
    from reconad import Detector
    from reconad.data.textures import generate_textures

    data = generate_textures(
        root / "textures", categories=("brick",), image_size=64, n_train=16, n_test_good=4, n_test_defect_per_type=1
    )
    run = root / "hfr-int8"
    args = ["train", "--model", "hfr", "--root", str(data), "--category", "brick", "--out", str(run)]
    code, err = cli([*args, "--image-size", "32", "--epochs", "1", "--set", "width=8", "--set", "bottleneck=8"])
    if code != 0:
        return [{"model": "hfr (trained run)", "engine": "onnx-int8", "note": err.strip()}]
    cli(["export", str(run), "--quantize", "int8"])
    det = Detector.load(run / "model")
    images = parity_images(det.input_size).astype(np.float32) / 255.0
    fr = FittedRun("hfr (trained run)", det, run, [], images)
    fr.reference = {"scores": det.decision_function(images), "maps": det.anomaly_map(images)}
    rows = []
    for engine, name in (("onnx", "model.onnx"), ("onnx-int8", "model.int8.onnx")):
        scores, maps = onnx_runtime(run / "export" / name, images)
        row = parity_row(fr, engine, scores, maps, scores > float(det.threshold_))
        if engine == "onnx-int8":
            check = json.loads((run / "export" / "model.int8.json").read_text())["accuracy_check"]
            row["note"] = ("offered: " if check["offered"] else "not offered: ") + check["reason"]
        rows.append(row)
    return rows


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1e}" if value < 0.5 else f"{value:.3f}"
    return str(value)


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| model | engine | max abs score diff / range | max abs map diff / range | score range (max abs score) "
        "| map range | within the test's bound | verdicts agree | note |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("refused"):
            lines.append(f"| {r['model']} | {r['engine']} | refused | | | | | | {r.get('note', '')} |")
            continue
        cells = [r["model"], r["engine"], _fmt(r.get("score_gap")), _fmt(r.get("map_gap"))]
        cells += [f"{r['score_range']:.3g} ({r['score_scale']:.3g})" if "score_range" in r else "–"]
        cells += [f"{r['map_range']:.3g}" if r.get("map_gap") is not None else "–"]
        cells += ["yes" if r.get("within_bound") else "no", _fmt(r.get("verdicts_agree")), r.get("note", "")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("--out", default="runs/engine-parity")
    return ap


def main() -> None:
    args = parser().parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        root = Path(tmp)
        for name in image_models():
            fr = fit_run(name, root)
            for row in measure(fr, root):
                if row.get("refused"):
                    row["note"] = "one-line refusal (export and --engine onnx)"
                rows.append(row)
        for name, (code, err) in table_refusals(root).items():
            one_line = code == 2 and len(err.strip().splitlines()) == 1
            rows.append(
                {"model": f"{name} (rows)", "engine": "onnx", "refused": True, "note": "one line" if one_line else err}
            )
        rows += _int8_rows(root)
    (out / "parity.json").write_text(json.dumps(rows, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
