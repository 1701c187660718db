"""A command's output folder holds only what its latest call wrote: ``predict`` into an
existing ``--out`` and ``test`` with fewer heat maps leave no stale overlays behind."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from helpers.runs import train_tiny_run
from reconad.cli import main
from reconad.data import list_images

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def run(tiny_mvtec, tmp_path_factory) -> Path:
    return train_tiny_run(tiny_mvtec, tmp_path_factory.mktemp("outputs") / "run")


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_predict_into_an_existing_out_keeps_only_the_new_overlays(run, tiny_mvtec, tmp_path):
    images = list_images(tiny_mvtec / "brick" / "test" / "good")
    out = tmp_path / "pred"
    assert main(["predict", str(run), *map(str, images[:3]), "--out", str(out), "--quiet"]) == 0
    (out / "notes.txt").write_text("mine")  # not predict's: must stay
    assert main(["predict", str(run), str(images[3]), "--out", str(out), "--quiet"]) == 0
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(_rows(out / "scores.csv")) == 1
    assert len(pngs) == 1 and images[3].stem in pngs[0], pngs
    assert (out / "notes.txt").read_text() == "mine"


def test_fewer_heatmaps_on_a_second_test_leave_no_stale_ones(run):
    assert main(["test", str(run), "--heatmaps", "5", "--quiet"]) == 0  # at least 5, whatever the ranking
    many = set((run / "heatmaps").glob("*.png"))
    assert main(["test", str(run), "--heatmaps", "1", "--quiet"]) == 0
    few = set((run / "heatmaps").glob("*.png"))
    assert len(few) < len(many)  # one anomalous + the two normal references, not the earlier set
    assert main(["test", str(run), "--heatmaps", "0", "--quiet"]) == 0
    assert not (run / "heatmaps").exists()


def test_the_server_answers_500_not_normal_for_a_nan_score():
    from types import SimpleNamespace

    import numpy as np
    from fastapi import HTTPException

    from reconad.serve.app import _rows

    model = SimpleNamespace(name="m")
    uploads = [SimpleNamespace(name="a.png"), SimpleNamespace(name="b.png")]
    result = SimpleNamespace(scores=np.array([0.1, np.nan]))
    with pytest.raises(HTTPException) as exc:
        _rows(model, uploads, result, 1.0, [None, None])  # type: ignore[arg-type]
    assert exc.value.status_code == 500 and "b.png" in str(exc.value.detail) and "NaN" in str(exc.value.detail)
