"""``calibration``: the realised false-alarm rate on fresh normal texture images at a target rate.

Per texture: ``n_train + n_calibration`` normal crops (seed 0) are handed to
``Detector.fit`` with ``val_fraction`` set so that ``n_calibration`` are held out
(early stopping, normalisation, threshold).  Fresh normals come from seed 1:
``n_fresh`` crops of the training region (the calibration's distribution) and
``n_fresh`` crops of the held-out quadrant (the test split's, a mild shift).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from reconad.protocols.results import Results, markdown_table, write_results
from reconad.protocols.settings import CalibrationSettings

KEYS = [
    "category",
    "target_fpr",
    "n_calibration",
    "expected_fpr",
    "fpr_fresh_training_region",
    "fpr_fresh_held_out_quadrant",
    "train_seconds",
]


def _category(cat: str, s: CalibrationSettings, options: dict[str, Any]) -> dict[str, Any]:
    from reconad.data import build_image_dataset
    from reconad.data.textures import generate_textures
    from reconad.detector import Detector

    size = s.image_size
    with tempfile.TemporaryDirectory() as tmp:
        data = generate_textures(
            Path(tmp) / "fit",
            categories=(cat,),
            image_size=size,
            n_train=s.n_train + s.n_calibration,
            n_test_good=0,
            n_test_defect_per_type=0,
            seed=0,
        )
        fresh = generate_textures(
            Path(tmp) / "fresh",
            categories=(cat,),
            image_size=size,
            n_train=s.n_fresh,
            n_test_good=s.n_fresh,
            n_test_defect_per_type=0,
            seed=1,
        )
        t0 = time.perf_counter()
        det = Detector("hfr", image_size=size, **options).fit(
            build_image_dataset("mvtec", str(data), category=cat, split="train", image_size=size)
        )
        train_s = time.perf_counter() - t0
        same = det.predict(build_image_dataset("mvtec", str(fresh), category=cat, split="train", image_size=size))
        shifted = det.predict(build_image_dataset("mvtec", str(fresh), category=cat, split="test", image_size=size))
    cal = det.calibration_
    assert cal is not None
    return {
        "category": cat,
        "target_fpr": options["fpr"],
        "n_calibration": cal.n,
        "expected_fpr": cal.expected_fpr,
        "fpr_fresh_training_region": float(same.mean()),
        "fpr_fresh_held_out_quadrant": float(shifted.mean()),
        "n_fresh": s.n_fresh,
        "threshold": cal.threshold,
        "train_seconds": train_s,
    }


def run(settings: CalibrationSettings) -> dict[str, Any]:
    """Realised false-alarm rates per texture; write results.json / results.md."""
    from reconad.data.textures import DEFAULT_CATEGORIES

    s = settings
    options = {"progress": False, **s.options}
    options["fpr"] = float(options.get("fpr", s.fpr))
    options["val_fraction"] = s.n_calibration / float(s.n_train + s.n_calibration)
    rows = []
    for cat in s.categories or list(DEFAULT_CATEGORIES):
        row = _category(cat, s, options)
        rows.append(row)
        if s.echo:
            print(
                f"{cat}: target {row['target_fpr']:.3f}, realised {row['fpr_fresh_training_region']:.3f} "
                f"(fresh training-region crops) / {row['fpr_fresh_held_out_quadrant']:.3f} (held-out quadrant), "
                f"{s.n_fresh} each; {row['n_calibration']} calibration normals",
                flush=True,
            )
    table = markdown_table(rows, KEYS)
    payload = {
        "image_size": s.image_size,
        "n_train": s.n_train,
        "n_calibration": s.n_calibration,
        "n_fresh": s.n_fresh,
        "per_category": rows,
    }
    data = (
        f"generated texture crops at {s.image_size} px: {s.n_train} training + {s.n_calibration} calibration "
        f"normals (seed 0); {s.n_fresh} + {s.n_fresh} fresh normals (seed 1: training region, held-out quadrant)"
    )
    doc = write_results(
        s.out, Results("calibration", "false alarms at a target rate", data, s.command, options, payload, table)
    )
    if s.echo:
        print(table)
    return doc
