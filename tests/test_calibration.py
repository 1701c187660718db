"""Thresholds and p-values from normal data only (reconad.calibration and the Detector).

The statistics are checked on synthetic scores (exact formulas, the false-alarm rate on
fresh draws, uniform p-values); the Detector is checked end to end on a toy image
problem (smooth random textures at 32 px) whose fresh normal images it never saw.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import ndimage, stats

from reconad import Detector
from reconad.calibration import Calibration, conformal_p_values, f1_optimal_threshold, threshold_for_fpr
from reconad.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("single_thread")


# ------------------------------------------------------------------ formulas


def test_p_values_follow_the_conformal_formula():
    normal = np.sort(np.array([1.0, 2.0, 2.0, 3.0, 5.0]))
    p = conformal_p_values(normal, [0.0, 2.0, 2.5, 5.0, 9.0])
    # (1 + #{normal >= s}) / (n + 1) with n = 5
    np.testing.assert_allclose(p, [6 / 6, 5 / 6, 3 / 6, 2 / 6, 1 / 6])


@pytest.mark.parametrize("n, fpr", [(99, 0.05), (200, 0.01), (37, 0.1), (1000, 0.2)])
def test_flagging_above_the_fpr_threshold_is_the_same_as_p_at_most_fpr(n, fpr):
    rng = np.random.default_rng(n)
    normal = np.sort(rng.normal(size=n))
    thr, expected = threshold_for_fpr(normal, fpr)
    assert expected <= fpr + 1e-12 and expected > fpr - 1 / (n + 1)
    s = np.concatenate([rng.normal(size=5000), normal])  # ties with the normal scores included
    np.testing.assert_array_equal(s > thr, conformal_p_values(normal, s) <= fpr)


def test_too_few_normals_for_the_target_fall_back_to_the_largest_score():
    normal = np.arange(10.0)
    thr, expected = threshold_for_fpr(normal, 0.05)  # needs 19 normals
    assert thr == 9.0 and expected == pytest.approx(1 / 11)


@pytest.mark.parametrize("fpr", [0.01, 0.05, 0.2])
def test_realised_false_alarm_rate_on_fresh_normal_scores_is_near_the_target(fpr):
    # Averaged over many calibration sets, the conformal rate is k/(n+1) <= fpr.
    rng = np.random.default_rng(1)
    n, rates = 199, []
    for _ in range(200):
        cal = Calibration.fit(rng.gamma(2.0, size=n), fpr=fpr)
        rates.append(np.mean(cal.predict(rng.gamma(2.0, size=2000))))
    k = np.floor(fpr * (n + 1))
    assert np.mean(rates) == pytest.approx(k / (n + 1), abs=0.004)
    assert abs(np.mean(rates) - fpr) <= 0.005


def test_p_values_of_fresh_normals_are_uniform_and_of_anomalies_small():
    rng = np.random.default_rng(2)
    cal = Calibration.fit(rng.normal(size=999), fpr=0.05)
    p = cal.p_values(rng.normal(size=3000))
    assert p.min() > 0 and p.max() <= 1
    assert stats.kstest(p, "uniform").pvalue > 0.001
    assert np.median(cal.p_values(rng.normal(4.0, size=100))) < 0.01


def test_f1_threshold_separates_separable_scores_and_is_optimal():
    thr, f1 = f1_optimal_threshold([0.1, 0.2, 0.3, 0.4], [0.8, 0.9])
    assert f1 == 1.0 and 0.4 < thr < 0.8
    rng = np.random.default_rng(3)
    neg, pos = rng.normal(size=300), rng.normal(1.5, size=60)
    thr, f1 = f1_optimal_threshold(neg, pos)
    s, y = np.concatenate([neg, pos]), np.r_[np.zeros(300), np.ones(60)]
    from sklearn.metrics import f1_score

    assert f1_score(y, s > thr) == pytest.approx(f1)
    flags = s[None, :] > np.unique(s)[:, None]  # every cut between observed scores
    tp = (flags & (y == 1)).sum(1)
    best = (2 * tp / (flags.sum(1) + y.sum())).max()
    assert f1 == pytest.approx(best)


def test_fpr_wins_over_quantile_and_f1_needs_anomalies():
    normal = np.linspace(0, 1, 101)
    cal = Calibration.fit(normal, fpr=0.1, quantile=0.5)
    assert cal.basis == "fpr=0.1" and cal.threshold > 0.85
    assert Calibration.fit(normal, quantile=0.5).basis == "quantile=0.5"
    with pytest.raises(DataError, match="labelled anomalies"):
        Calibration.fit(normal, use_f1=True)
    cal = Calibration.fit(normal, fpr=0.1, anomaly_scores=[2.0, 3.0], use_f1=True)
    assert cal.basis == "f1" and 1.0 < cal.threshold < 2.0 and cal.f1 == 1.0


def test_round_trip_and_bad_input():
    cal = Calibration.fit([3.0, 1.0, 2.0], quantile=0.5, anomaly_scores=[5.0])
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.to_dict() == cal.to_dict() and list(back.normal_scores) == [1.0, 2.0, 3.0]
    with pytest.raises(DataError):
        Calibration.fit([1.0, float("nan")], fpr=0.1)
    with pytest.raises(DataError):
        Calibration.fit([], fpr=0.1)
    with pytest.raises(ConfigError):
        Calibration.fit([1.0, 2.0], fpr=1.5)
    with pytest.raises(DataError):
        Calibration.from_dict({"threshold": 1.0})


# ----------------------------------------------------------- the Detector


def _textures(n: int, seed: int, size: int = 32) -> np.ndarray:
    """Smooth random grey textures (the normal class of the toy problem), uint8 RGB."""
    rng = np.random.default_rng(seed)
    x = ndimage.gaussian_filter(rng.normal(size=(n, size, size)), sigma=(0, 2, 2), mode="wrap")
    x = 0.5 + 0.25 * x / x.std(axis=(1, 2), keepdims=True)
    return np.repeat((np.clip(x, 0, 1) * 255).astype(np.uint8)[..., None], 3, axis=-1)


TOY = dict(
    image_size=32,
    epochs=2,
    batch_size=32,
    lr=1e-2,
    width=16,
    bottleneck=8,
    device="cpu",
    progress=False,
    patience=None,
    calibration_fraction=0.5,
    fpr=0.1,
)


@pytest.fixture(scope="module")
def toy_det(single_thread):
    return Detector("hfr", **TOY).fit(_textures(300, seed=0))


@pytest.mark.slow
def test_detector_false_alarm_rate_on_fresh_normal_images_is_near_the_target(toy_det):
    cal = toy_det.calibration_
    assert cal is not None and cal.basis == "fpr=0.1" and cal.n == 150 and cal.source == "set-aside normal"
    fresh = _textures(600, seed=1)
    rate = toy_det.predict(fresh).mean()
    # 150 set-aside normals: the rate a given calibration set gives has sd ~0.025.
    assert abs(rate - 0.1) <= 0.06
    p = toy_det.p_values(fresh)
    assert p.min() > 0 and p.max() <= 1
    assert np.array_equal(p <= 0.1, toy_det.predict(fresh) == 1)
    hist = np.histogram(p, bins=5, range=(0, 1))[0] / len(p)
    assert hist.min() > 0.1 and hist.max() < 0.3  # roughly uniform: 0.2 per bin


def test_detector_flags_the_anomalous_toy_images(toy_det):
    odd = _textures(40, seed=2)
    odd[:, 8:24, 8:24] = 255  # a bright square on every image
    assert toy_det.predict(odd).mean() > 0.5


def test_threshold_basis_and_calibration_are_saved_and_loaded(toy_det, tmp_path):
    toy_det.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["threshold"] == toy_det.threshold_ and cfg["threshold_basis"] == "fpr=0.1"
    assert cfg["calibration"]["n_normal"] == 150 and cfg["detector"]["fpr"] == 0.1
    back = Detector.load(tmp_path / "m")
    fresh = _textures(8, seed=3)
    np.testing.assert_allclose(back.p_values(fresh), toy_det.p_values(fresh))
    assert back.calibration_.basis == "fpr=0.1"


def test_calibrate_on_new_normals_and_with_labelled_anomalies(toy_det):
    import copy

    det = copy.deepcopy(toy_det)  # keep the module's detector untouched
    cal = det.calibrate(_textures(99, seed=4), fpr=0.05)
    assert cal.n == 99 and cal.basis == "fpr=0.05" and det.threshold_ == cal.threshold
    odd = _textures(20, seed=5)
    odd[:, 8:24, 8:24] = 255
    cal = det.calibrate(_textures(99, seed=4), anomalous_data=odd, use_f1=True)
    assert cal.basis == "f1" and cal.f1_threshold == det.threshold_ and cal.f1 is not None


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, "a", True])
def test_bad_fpr_is_refused(bad):
    with pytest.raises(ConfigError, match="fpr"):
        Detector("hfr", fpr=bad).check_params()


@pytest.mark.slow
def test_cli_train_fpr_and_test_and_predict_write_threshold_and_p_values(tiny_mvtec, tmp_path, capsys):
    from reconad.cli import main

    run = tmp_path / "run"
    rc = main(
        [
            "train",
            "--dataset",
            "mvtec",
            "--root",
            str(tiny_mvtec),
            "--category",
            "brick",
            "--out",
            str(run),
            "--image-size",
            "64",
            "--epochs",
            "1",
            "--fpr",
            "0.2",
            "--quiet",
            "--set",
            "width=16",
            "--set",
            "bottleneck=8",
            "--set",
            "patience=null",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "fpr=0.2" in out and "on new normal parts (90 % band)" in out
    assert main(["test", str(run), "--heatmaps", "0", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "fpr=0.2" in out and "measured on the test split" in out
    m = json.loads((run / "metrics.json").read_text())
    assert m["threshold_basis"] == "fpr=0.2" and m["calibration"]["basis"] == "fpr=0.2"
    # 16 training images, fpr 0.2: 4 set aside to calibrate (what 20 % needs), 12 to train
    assert m["calibration"]["threshold"] == m["threshold"] and m["calibration"]["n_normal"] == 4
    with open(run / "scores.csv") as fh:
        rows = list(csv.DictReader(fh))
    p = np.array([float(r["p_value"]) for r in rows])
    assert len(rows) == m["n_test"] and ((p > 0) & (p <= 1)).all()
    assert all((float(r["p_value"]) <= 0.2) == (r["predicted"] == "1") for r in rows)
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(tiny_mvtec / "brick" / "test" / "hole"), "--out", str(out), "--quiet"]) == 0
    with open(out / "scores.csv") as fh:
        assert next(iter(csv.DictReader(fh))).keys() >= {"score", "p_value", "label"}


@pytest.mark.slow
def test_calibration_protocol_reports_the_realised_false_alarm_rates(tmp_path):
    from reconad.protocols import CalibrationSettings, run_protocol

    settings = CalibrationSettings(
        categories=["brick"],
        fpr=[0.1, 0.05],
        n_train=[40],
        methods=["split", "holdout", "cross-fit"],
        n_fresh=10,
        n_defects=2,
        image_size=32,
        out=str(tmp_path),
        options=dict(epochs=1, width=16, bottleneck=8, device="cpu", patience=None, calibration_folds=2),
        echo=False,
    )
    r = run_protocol("calibration", settings)
    rows = {(row["method"], row["target_fpr"]): row for row in r["per_category"]}
    hold, cross = rows[("holdout", 0.1)], rows[("cross-fit", 0.1)]
    assert hold["n_calibration"] == 4 and cross["n_calibration"] == 40  # 10 % held out; every image cross-fitted
    assert hold["expected_fpr"] == pytest.approx(1 / 5) and cross["expected_fpr"] == pytest.approx(4 / 41)
    # the split is sized by the target: 9 scores resolve 10 %, 19 resolve 5 % (one training each)
    assert rows[("split", 0.1)]["n_calibration"] == 9 and rows[("split", 0.05)]["n_calibration"] == 19
    for row in r["per_category"]:
        for key in ("realised_fpr", "realised_fpr_shifted"):
            assert 0 <= row[key] <= 1 and row[key] * 10 == pytest.approx(round(row[key] * 10))
        assert row["band_low"] <= row["expected_fpr"] <= row["band_high"] and 0 <= row["image_auroc"] <= 1
        assert row["in_band"] == (row["band_low"] <= row["realised_fpr"] <= row["band_high"])
    assert {(m["method"], m["target_fpr"]) for m in r["summary"]} == set(rows)
    assert (tmp_path / "results.md").exists() and json.loads((tmp_path / "results.json").read_text())["n_fresh"] == 10


def test_cross_fitted_calibration_scores_every_normal_training_sample():
    from helpers.recon_toys import table_toy

    train, _, _ = table_toy()
    opts = dict(epochs=2, batch_size=32, progress=False, device="cpu", patience=None, latent_dim=2, hidden=[8])
    det = Detector("ae", fpr=0.05, calibration="cross-fit", calibration_folds=3, **opts).fit(train)
    cal = det.calibration_
    assert cal.n == len(train) and cal.source == "cross-fitted (3-fold)"
    assert cal.expected_fpr == pytest.approx(15 / 301)  # floor(0.05 * 301) = 15 of 301
    holdout = Detector("ae", fpr=0.05, calibration="holdout", **opts).fit(train)
    assert holdout.calibration_.n == 30 and holdout.calibration_.source == "held-out normal"
    with pytest.raises(ConfigError, match="calibration_folds"):
        Detector("ae", calibration="cross-fit", calibration_folds=1).check_params()
    with pytest.raises(ConfigError, match="unknown calibration"):
        Detector("ae", calibration="k-fold").check_params()


# ------------------------------------------------ the default: a calibration split


def _plane_opts() -> dict:
    return dict(epochs=2, batch_size=32, progress=False, device="cpu", patience=None, latent_dim=2, hidden=[8])


def _ks_to_uniform(p: np.ndarray) -> float:
    """sup_u |share of p <= u - u| over the p-values' own support (and just below it)."""
    u = np.sort(p)
    ecdf_hi = np.arange(1, len(u) + 1) / len(u)
    ecdf_lo = np.arange(len(u)) / len(u)
    return float(max(np.max(np.abs(ecdf_hi - u)), np.max(np.abs(ecdf_lo - u))))


def test_p_values_of_fresh_normals_are_uniform_within_a_ks_bound():
    """Conformal p-values of new normal rows compare the rows' scores with the n set-aside
    calibration scores: their distance from the uniform law is a two-sample KS distance
    (plus the 1/(n+1) grid), below 1.95 sqrt(1/n + 1/m) but for a 0.1 % chance."""
    from helpers.recon_toys import plane_rows

    rng = np.random.default_rng(7)
    det = Detector("ae", calibration_fraction=0.4, **_plane_opts()).fit(plane_rows(500, rng))
    cal = det.calibration_
    assert cal.source == "set-aside normal" and cal.n == 200 and cal.default_target
    fresh = plane_rows(1000, rng)
    n, m = cal.n, len(fresh)
    bound = 1.95 * np.sqrt(1 / n + 1 / m) + 1 / (n + 1)
    assert _ks_to_uniform(det.p_values(fresh)) <= bound
    # the same check refuses p-values of rows that are not like the calibration ones
    assert _ks_to_uniform(det.p_values(scores=det.decision_function(fresh) * 1.3)) > bound


def test_the_calibration_split_is_set_aside_before_training_and_seen_by_nothing():
    from helpers.recon_toys import plane_rows

    rows = plane_rows(120, np.random.default_rng(0))
    det = Detector("ae", **_plane_opts())
    train, val, cal, _ = det._splits(rows, None, None)
    assert len(cal) == 24 and len(train) + len(val) + len(cal) == 120  # 20 % of 120

    def original(part):  # a subset of the rest after the calibration split
        return set(np.asarray(part.dataset.indices)[np.asarray(part.indices)].tolist())

    assert not (original(train) | original(val)) & set(cal.indices)
    det.fit(rows)
    np.testing.assert_allclose(np.sort(det.decision_function(rows[cal.indices])), det.calibration_.normal_scores)
    assert list(det.held_out(rows).indices) == list(cal.indices)  # what int8 and quantize calibrate on


@pytest.mark.parametrize(
    "n, fpr, size", [(30, None, 19), (60, None, 19), (120, None, 24), (600, None, 120), (200, 0.01, 99)]
)
def test_the_split_is_as_large_as_the_target_needs(n, fpr, size):
    from reconad.calibration import calibration_split_size

    assert calibration_split_size(n, 0.2, fpr) == size


def test_the_default_target_is_5_percent_until_the_scores_resolve_1_percent():
    rng = np.random.default_rng(0)
    few, many = Calibration.fit(rng.random(60)), Calibration.fit(rng.random(120))
    assert few.basis == "fpr=0.05" and few.default_target and many.basis == "fpr=0.01"
    from reconad.calibration import default_target_note

    assert "cannot resolve 1%" in default_target_note(few) and "needs 99" in default_target_note(few)
    assert default_target_note(Calibration.fit(rng.random(60), fpr=0.05)) == ""
    back = Calibration.from_dict(json.loads(json.dumps(few.to_dict())))
    assert back.default_target and back.to_dict() == few.to_dict()


def test_the_expected_band_is_the_beta_law_of_the_realised_rate():
    from reconad.calibration import realised_rate_band

    # 60 scores, 5 %: k = 3, realised rate ~ Beta(3, 58); simulate it with uniform scores
    lo, hi = realised_rate_band(60, 0.05)
    rng = np.random.default_rng(0)
    rates = [1 - threshold_for_fpr(np.sort(rng.random(60)), 0.05)[0] for _ in range(4000)]
    assert np.mean(np.array(rates) < lo) == pytest.approx(0.05, abs=0.012)
    assert np.mean(np.array(rates) > hi) == pytest.approx(0.05, abs=0.012)
    note = Calibration.fit(rng.random(60), fpr=0.05).expectation_note()
    assert f"{100 * lo:.2g}%-{100 * hi:.2g}%" in note and "1% needs 99" in note


def test_a_target_the_images_cannot_resolve_is_one_line_saying_how_many_it_needs():
    from helpers.recon_toys import plane_rows

    rows = plane_rows(60, np.random.default_rng(0))
    with pytest.raises(DataError, match=r"fpr 0.01 needs at least 109 normal images \(99 set aside"):
        Detector("ae", fpr=0.01, **_plane_opts()).fit(rows)
    from reconad.calibration import calibrate_normal_scores

    with pytest.raises(DataError, match="fpr 0.01 needs at least 99 reviewed normal images, got 60"):
        calibrate_normal_scores(np.arange(60.0), 0.01)
    cal = calibrate_normal_scores(np.arange(60.0), 0.05)
    assert cal.threshold == 57.0 and cal.source == "reviewed normal"  # k = floor(0.05 * 61) = 3
    np.testing.assert_allclose(cal.p_values([57.0, 100.0]), [4 / 61, 1 / 61])


def test_the_measured_rate_is_shown_beside_its_band():
    from reconad.calibration import measured_note, realised_rate_band

    cal = Calibration.fit(np.arange(60.0), fpr=0.05)
    lo, hi = realised_rate_band(60, 0.05, n_new=100)
    assert lo < 0.05 < hi
    inside, outside = measured_note(cal, 5, 100), measured_note(cal, 40, 100)
    assert "measured on the test split: 5% (5 of 100 normal images), inside the band" in inside
    assert "outside the band" in outside and f"{100 * lo:.2g}%-{100 * hi:.2g}%" in outside
