"""Reliability of what goes in and what a verdict rests on.

* expected false-alarm rates: one formula for every threshold basis, right on fresh
  draws, and plainly "not resolved" when there are too few held-out normals;
* pixel values: a fixed scale per dtype (never a statistic of the batch), values
  outside the accepted range refused naming the image;
* NaN / infinite input (image arrays, image files, tables) refused naming the image,
  file or cell; a non-finite score from a model is an error, never "normal".
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reconad import Detector
from reconad.calibration import Calibration, expected_fpr, normals_needed
from reconad.data.inputs import ArrayImageDataset
from reconad.data.rows import TabularDataset
from reconad.data.table_files import load_csv, load_npz
from reconad.errors import DataError, ScoringError
from reconad.imaging import read_array

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE = 16


def _images(n: int, seed: int = 0) -> np.ndarray:
    """(n, SIZE, SIZE, 3) uint8 images of mid-grey noise."""
    return np.random.default_rng(seed).integers(60, 200, (n, SIZE, SIZE, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def det(single_thread) -> Detector:
    """A tiny conv autoencoder fitted in about a second (what is tested is around the model)."""
    opts = dict(image_size=SIZE, epochs=1, device="cpu", progress=False, patience=None, val_fraction=0.5)
    return Detector("ae", **opts).fit(_images(24))


# --------------------------------------------------- expected false-alarm rates


def test_one_held_out_normal_gives_one_unresolved_rate_whatever_the_basis():
    by_quantile = Calibration.fit([0.48], quantile=0.99)
    by_fpr = Calibration.fit([0.48], fpr=0.05)
    assert by_quantile.threshold == by_fpr.threshold == 0.48
    # The same threshold has the same expected rate: 1 / (n + 1), not 0 % for one and 50 % for the other.
    assert by_quantile.expected_fpr == by_fpr.expected_fpr == pytest.approx(0.5)
    for cal, target, needed in ((by_quantile, "1%", 99), (by_fpr, "5%", 19)):
        assert not cal.resolved
        text = cal.describe()
        assert "not resolved" in text and f"not the {target} asked" in text and f"at least {needed}" in text
        d = cal.to_dict()
        assert d["expected_fpr_resolved"] is False and d["fpr_resolution"] == pytest.approx(0.5)
        assert d["normals_needed"] == needed and d["expected_fpr_note"] in text
    assert normals_needed(0.05) == 19 and normals_needed(0.01) == 99 and normals_needed(0.5) == 1


@pytest.mark.parametrize("basis", [dict(quantile=0.9), dict(quantile=0.99), dict(fpr=0.1), dict(fpr=0.3)])
def test_expected_rate_bounds_the_realised_rate_on_fresh_normals(basis):
    # Uniform(0, 1) normal scores: a threshold t flags exactly 1 - t of fresh normals.
    rng = np.random.default_rng(7)
    n = 20
    cals = [Calibration.fit(rng.random(n), **basis) for _ in range(3000)]
    realised = np.mean([1.0 - c.threshold for c in cals])
    expected = np.mean([c.expected_fpr for c in cals])
    # At most the expected rate, and within the resolution 1/(n+1) of it.
    assert expected - 1 / (n + 1) - 0.005 <= realised <= expected + 0.005


def test_every_basis_uses_the_one_formula_and_saved_records_are_recomputed():
    normal = np.sort(np.random.default_rng(0).normal(size=50))
    for cal in (
        Calibration.fit(normal, quantile=0.9),
        Calibration.fit(normal, fpr=0.1),
        Calibration.fit(normal, fpr=0.1, anomaly_scores=[5.0, 6.0], use_f1=True),
    ):
        assert cal.expected_fpr == pytest.approx(expected_fpr(normal, cal.threshold))
    # A record written before (quantile basis, threshold = the largest score, stored as 0 %).
    old = {"threshold": 0.48, "basis": "quantile=0.99", "quantile": 0.99, "expected_fpr": 0.0, "normal_scores": [0.48]}
    back = Calibration.from_dict(old)
    assert back.expected_fpr == pytest.approx(0.5) and not back.resolved


def test_threshold_above_every_normal_says_the_rate_is_below_resolution():
    cal = Calibration.fit(np.arange(10.0), fpr=0.1, anomaly_scores=[20.0], use_f1=True)
    assert cal.threshold > 9 and not cal.resolved and "too few" in cal.describe()
    kde = Calibration.fit(np.random.default_rng(1).normal(size=20), fpr=0.01, method="kde")
    assert not kde.resolved and "extrapolation" in kde.describe()


def test_cli_train_and_test_print_the_unresolved_rate(tiny_mvtec, tmp_path, capsys):
    from reconad.cli import main

    run = tmp_path / "run"
    base = ["--dataset", "mvtec", "--root", str(tiny_mvtec), "--category", "brick", "--image-size", "32"]
    opts = ["--epochs", "1", "--fpr", "0.05", "--quiet", "--set", "width=8", "--set", "bottleneck=4"]
    more = ["--set", "val_fraction=0.07", "--set", "patience=null", "--set", "calibration=holdout"]
    assert main(["train", *base, "--out", str(run), *opts, *more]) == 0
    out = capsys.readouterr().out
    assert "from 1 held-out normal scores" in out and "not resolved" in out and "at least 19" in out
    cfg = json.loads((run / "model" / "config.json").read_text())["calibration"]
    assert cfg["expected_fpr"] == pytest.approx(0.5) and cfg["expected_fpr_resolved"] is False
    assert main(["test", str(run), "--heatmaps", "0", "--quiet", "--engine", "torch"]) == 0
    assert "calibration: expected false-alarm rate not resolved" in capsys.readouterr().out


def test_cli_train_refuses_a_target_the_images_cannot_resolve_in_one_line(tiny_mvtec, tmp_path, capsys):
    from reconad.cli import main

    base = ["--dataset", "mvtec", "--root", str(tiny_mvtec), "--category", "brick", "--image-size", "32"]
    opts = ["--epochs", "1", "--fpr", "0.05", "--quiet", "--set", "width=8", "--set", "bottleneck=4"]
    assert main(["train", *base, "--out", str(tmp_path / "run"), *opts]) == 2  # 16 images; 5 % needs 29
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fpr 0.05 needs at least 29 normal images (19 set aside" in err[0]


# ------------------------------------------------------------ pixel value ranges


def test_float_images_outside_the_unit_range_are_refused_naming_the_image(det):
    x = _images(3).astype(np.float32) / 255
    bad = x.copy()
    bad[1] *= 3.0
    with pytest.raises(DataError, match=r"array\[1\]: float pixel values must lie in \[0, 1\]"):
        det.decision_function(bad)
    with pytest.raises(DataError, match=r"array\[2\]"):
        det.predict(np.concatenate([x[:2], -x[2:]]))
    rounding = x.copy()
    rounding[0, 0, 0] = 1.0 + 1e-7  # float rounding is not data: accepted and clipped
    np.testing.assert_allclose(det.decision_function(rounding)[1:], det.decision_function(x)[1:])


def test_integer_images_have_a_fixed_scale_whatever_they_are_scored_with(det):
    u8 = _images(2)
    u16 = u8.astype(np.uint16) * 257  # the same image on the 16-bit scale
    ref = det.decision_function(u8[:1])
    bright = np.full_like(u16[:1], 400)  # a dark 16-bit image beside it: the batch's maximum changes
    np.testing.assert_allclose(det.decision_function(u16[:1]), ref, rtol=1e-5)
    np.testing.assert_allclose(det.decision_function(np.concatenate([u16[:1], bright]))[:1], ref, rtol=1e-5)
    np.testing.assert_allclose(det.decision_function(torch.from_numpy(u8[:1])), ref, rtol=1e-5)
    np.testing.assert_allclose(det.decision_function(u8[:1].astype(np.float32) / 255), ref, rtol=1e-5)
    for dtype in (np.int32, np.int64, np.int16, np.uint32):
        with pytest.raises(DataError, match=f"{np.dtype(dtype)} pixel values have no fixed scale"):
            det.decision_function(u8.astype(dtype))
    with pytest.raises(DataError, match="int64"):
        det.decision_function(torch.from_numpy(u8).long())
    mask = ArrayImageDataset(np.eye(SIZE, dtype=bool)[None], None)[0].image
    assert mask.max() == 1.0 and mask.min() == 0.0 and mask.sum() == 3 * SIZE  # bool: 0 / 1


def _tiff(path: Path, values: np.ndarray, mode: str) -> Path:
    Image.fromarray(values, mode=mode).save(path)
    return path


def test_image_files_are_read_on_a_fixed_scale_and_out_of_range_ones_refused(tmp_path):
    ok = np.full((8, 8), 0.25, np.float32)
    assert np.allclose(read_array(_tiff(tmp_path / "ok.tif", ok, "F")), 0.25)
    big = ok.copy()
    big[3, 3] = 7.0
    with pytest.raises(DataError, match=r"big\.tif: float pixel values must lie in \[0, 1\]"):
        read_array(_tiff(tmp_path / "big.tif", big, "F"))
    sixteen = _tiff(tmp_path / "i16.tif", np.full((8, 8), 65535 // 5, np.int32), "I")
    assert np.allclose(read_array(sixteen), (65535 // 5) / 65535)
    with pytest.raises(DataError, match=r"i32\.tif: integer pixel values must lie in 0-65535"):
        read_array(_tiff(tmp_path / "i32.tif", np.full((8, 8), 70000, np.int32), "I"))


# ------------------------------------------------------------- non-finite input


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused_naming_the_image(det, value):
    x = _images(3).astype(np.float32) / 255
    x[2, 3, 3, 0] = value
    with pytest.raises(DataError, match=r"array\[2\]: 1 pixel value\(s\) are NaN or infinite"):
        det.predict(x)
    with pytest.raises(DataError, match=r"array\[2\]"):
        det.decision_function(torch.from_numpy(x))
    with pytest.raises(DataError, match=r"array\[2\]"):
        Detector("ae", image_size=SIZE, epochs=1, progress=False).fit(x)


def test_non_finite_float_image_file_is_refused_naming_the_file(tmp_path, det):
    x = np.full((SIZE, SIZE), 0.5, np.float32)
    x[1, 1] = np.nan
    path = _tiff(tmp_path / "nan.tif", x, "F")
    with pytest.raises(DataError, match=r"nan\.tif: 1 pixel value\(s\) are NaN or infinite"):
        det.predict([str(path)])


def test_non_finite_table_cells_are_refused_naming_row_and_column(tmp_path):
    rows = np.ones((4, 3))
    rows[2, 1] = np.inf
    with pytest.raises(DataError, match=r"row 2, column 1 is inf"):
        Detector("ae", epochs=1, progress=False).fit(rows)
    with pytest.raises(DataError, match=r"row 0, column 0 is 1e\+39: too large for float32"):
        TabularDataset(np.array([[1e39, 0.0]]))
    (tmp_path / "t.csv").write_text("a,b\n1,2\n3,nan\n")
    with pytest.raises(DataError, match=r"t\.csv: data row 1, column 'b' holds 'nan'"):
        load_csv(tmp_path / "t.csv")
    X = np.zeros((3, 2))
    X[1, 0] = np.nan
    np.savez(tmp_path / "t.npz", X=X, y=np.zeros(3))
    with pytest.raises(DataError, match=r"t\.npz: X: row 1, column 0 is nan"):
        load_npz(tmp_path / "t.npz")


# ------------------------------------------------------- non-finite model scores


def test_a_model_giving_nan_on_finite_input_is_an_error_not_normal(det):
    import copy

    broken = copy.deepcopy(det)
    with torch.no_grad():
        for p in broken.model_.parameters():
            p.fill_(float("nan"))
    x = _images(2)
    with pytest.raises(ScoringError, match=r"array\[0\]: NaN score from the ae model although the input is finite"):
        broken.predict(x)
    with pytest.raises(ScoringError):
        broken.decision_function(x)
    cal = det.calibration_
    with pytest.raises(ScoringError, match="score 1: NaN score"):
        cal.predict([0.1, np.nan])
    with pytest.raises(ScoringError, match="infinite"):
        det.p_values(scores=[np.inf])


def test_streamed_predict_refuses_a_nan_score_instead_of_writing_normal(tmp_path):
    from reconad.inference import Calibrated, InputSpec, Pipeline
    from reconad.inference.pipeline import Origin
    from reconad.streaming import stream_predict

    path = tmp_path / "a.png"
    Image.fromarray(_images(1)[0]).save(path)

    class NanScorer:
        name = "onnx"

        def __call__(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return np.full(len(x), np.nan), np.zeros((len(x), SIZE, SIZE), np.float32)

    origin = Origin("0" * 64, {})
    pipe = Pipeline("ae", InputSpec(SIZE), NanScorer(), None, Calibrated(0.5, None), 4, origin)
    with pytest.raises(ScoringError, match=r"a\.png: NaN score"):
        stream_predict(pipe, [path], tmp_path / "out", overlays="none", show_progress=False)
