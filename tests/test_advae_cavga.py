"""adVAE and CAVGA (both variants), and the KDE threshold (``calibration="kde"``).

Each model learns the separable toys (16 px bars; adVAE also the table near a plane),
CAVGA's attention maps have the image's size and light up the defect, 200 steps at a
high learning rate stay finite, a run resumed after a kill equals an uninterrupted one,
save / load keeps the scores, and the label policy holds: cavga's variant w learns from
labelled anomalies and refuses to train without one, adVAE and cavga's variant u refuse
them.  The KDE threshold is checked on scores of a known density.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from helpers.recon_toys import bar_images, image_toy, table_toy
from helpers.recon_training import (
    assert_finite,
    assert_learns_the_bars,
    assert_resume_equals_uninterrupted,
    bars_fitter,
    fit_tiny,
    tiny_images,
)
from helpers.saved import reload_without_option
from reconad import Detector
from reconad.calibration import Calibration, kde_threshold
from reconad.data.labels import LabelledDataset
from reconad.errors import ConfigError, DataError
from reconad.models import build_model
from reconad.models.cavga import CAVGA
from reconad.models.cavga.networks import attention, cam_weights

pytestmark = pytest.mark.usefixtures("single_thread")

BASE = {"progress": False, "device": "cpu", "width": 8, "batch_size": 16}
#: toy settings (enough steps for each to separate the bars); cavga's latent map is 4x4
#: (two halvings of the 16 px bars: ``min_stages=1`` lets ``min_size`` alone decide)
SETTINGS = {
    "advae": {"epochs": 12},
    "cavga-u": {"epochs": 20, "lr": 2e-3, "min_size": 4, "min_stages": 1},
    "cavga-w": {"epochs": 20, "lr": 3e-3, "min_size": 4, "min_stages": 1, "variant": "w"},
}
N_LABELLED = 12  # labelled anomalies (vertical bars) beside the 160 normal training bars


def _with_labelled_anomalies(train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    extra = bar_images(N_LABELLED, np.random.default_rng(5), vertical=True)
    return np.concatenate([train, extra]), np.r_[np.zeros(len(train)), np.ones(N_LABELLED)]


@pytest.fixture(scope="module")
def fitted(bars):
    """Each model (variant) trained once on the bars, lazily by key."""
    return bars_fitter(bars, BASE, SETTINGS, {"cavga-w": _with_labelled_anomalies})


@pytest.mark.parametrize("key", list(SETTINGS))
def test_learns_the_bars_with_maps(key, fitted, bars):
    assert_learns_the_bars(fitted(key), bars, 0.9)


def test_cavga_attention_map_is_higher_on_the_defect(fitted, bars):
    """1 - A is larger on the vertical bar than around it, and on anomalies than on normals."""
    _, test, labels = bars
    maps = fitted("cavga-u").anomaly_map(test)
    anomalous = maps[labels == 1]
    defect = test[labels == 1] > 0
    assert anomalous[defect].mean() > 1.3 * anomalous[~defect].mean()
    assert anomalous.mean() > maps[labels == 0].mean()


def test_cavga_latent_map_needs_three_halvings_on_small_images():
    """28 px digits get a 3x3 latent map (not 7x7, more numbers than the image has);
    at 64 px and above min_size alone decides (8x8), as before min_stages existed."""
    cases = [(side, {}, expected) for side, expected in ((28, 3), (32, 4), (64, 8), (128, 8), (256, 8))]
    for side, opts, expected in [*cases, (28, {"min_stages": 1}, 7)]:
        model = build_model("cavga", input_shape=[1, side, side], **opts).eval()
        with torch.no_grad():
            _, mu, _ = model.nets.encoder(torch.zeros(1, 1, side, side))
        assert tuple(mu.shape[2:]) == (expected, expected), (side, opts)


def test_a_cavga_saved_before_min_stages_loads_as_it_was_built(tmp_path):
    """Files written before ``min_stages`` existed hold a min_size-only (7x7 at 28 px) network."""

    images = np.random.default_rng(0).random((24, 28, 28)).astype(np.float32)
    old = Detector("cavga", **{**BASE, "width": 4, "epochs": 1, "min_stages": 1}).fit(images)
    again = reload_without_option(old, tmp_path / "old", "min_stages")
    assert again.model_.config.min_stages == 1
    np.testing.assert_array_equal(again.decision_function(images[:6]), old.decision_function(images[:6]))


def test_cavga_attention_is_grad_cam():
    """The closed-form channel weights equal Grad-CAM's spatial mean of d(target)/dF by autograd."""
    torch.manual_seed(0)
    model = build_model("cavga", input_shape=[3, 16, 16], width=8, min_size=4, variant="w").eval()
    with torch.no_grad():
        f, _, _ = model.nets.encoder(torch.rand(3, 3, 16, 16) * 2 - 1)
    f.requires_grad_(True)
    for target in (None, 0, 1):
        mu = model.nets.encoder.mu(f)
        y = mu.sum() if target is None else model.nets.classifier(mu.flatten(1))[:, target].sum()
        (grad,) = torch.autograd.grad(y, f)
        alpha = grad.mean(dim=(2, 3))  # (B, C)
        by_autograd = torch.sigmoid((alpha[:, :, None, None] * f).sum(dim=1))
        closed = attention(f, cam_weights(model.nets.encoder.mu, model.nets.classifier, target))
        torch.testing.assert_close(closed, by_autograd)


def test_advae_learns_the_table_and_kde_calibrates_it(tmp_path):
    train, test, labels = table_toy()
    det = Detector("advae", **{**BASE, "epochs": 10, "batch_size": 32}, calibration="kde", fpr=0.1).fit(train)
    assert det.model_.data_kind == "table"
    assert roc_auc_score(labels, det.decision_function(test)) > 0.9
    cal = det.calibration_
    assert cal.method == "kde" and cal.basis == "kde fpr=0.1"
    assert det.threshold_ == pytest.approx(kde_threshold(det.val_scores_, 0.1)[0])
    assert cal.expected_fpr == pytest.approx(0.1, abs=1e-6)
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    assert back.calibration_.method == "kde" and back.threshold_ == det.threshold_
    np.testing.assert_array_equal(back.decision_function(test), det.decision_function(test))
    with pytest.raises(ConfigError, match="anomaly maps exist for images only"):
        det.anomaly_map(test)


@pytest.mark.parametrize("key", list(SETTINGS))
def test_save_load_gives_identical_scores_and_maps(key, fitted, bars, tmp_path):
    _, test, _ = bars
    det = fitted(key)
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    s1, m1 = det.score_and_map(test)
    s2, m2 = back.score_and_map(test)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(m1, m2)


# --------------------------------------------------------------------- KDE threshold
def test_kde_threshold_on_a_known_density():
    scores = np.random.default_rng(0).normal(size=2000)
    thr, tail = kde_threshold(scores, 0.05)
    assert thr == pytest.approx(1.645, abs=0.1)
    assert tail == pytest.approx(0.05, abs=1e-6)
    cal = Calibration.fit(scores, quantile=0.95, method="kde")
    assert cal.basis == "kde quantile=0.95" and cal.threshold == pytest.approx(thr)
    assert cal.threshold_for_fpr(0.05) == pytest.approx(thr)
    back = Calibration.from_dict(cal.to_dict())
    assert back.method == "kde" and back.to_dict() == cal.to_dict()
    # one distinct score: no spread, so the rate is the conformal one of a threshold at the
    # largest normal score, 1/(n+1), not a tail mass of 0
    assert kde_threshold(np.full(10, 3.0), 0.1) == (3.0, pytest.approx(1 / 11))
    with pytest.raises(ConfigError):
        kde_threshold(scores, 0.0)
    with pytest.raises(ConfigError, match="method"):
        Calibration.fit(scores, fpr=0.1, method="zzz")
    with pytest.raises(ConfigError, match="below 1"):
        Calibration.fit(scores, quantile=1.0, method="kde")


# ------------------------------------------------------------------ engine behaviour
def _tiny_images(n: int = 40) -> LabelledDataset:
    """8 px bars; the first four labelled anomalies (what cavga's variant w needs)."""
    return LabelledDataset(tiny_images(n), np.r_[np.ones(4), np.zeros(n - 4)])


def _tiny(key: str) -> dict:
    """The smallest networks (8 px images, width 4, 8 latent numbers / channels)."""
    extra = {"min_size": 4, "min_stages": 1, "variant": key.split("-")[1]} if key.startswith("cavga") else {}
    return {"input_shape": [3, 8, 8], "width": 4, "latent_dim": 8, **extra}


def _train(key: str, epochs: int, checkpoint_dir=None, resume: bool = False):
    torch.manual_seed(0)
    model = build_model(key.split("-")[0], **_tiny(key))
    # the unsupervised models train on the normal images only
    data = _tiny_images() if key == "cavga-w" else tiny_images(36)
    return model, fit_tiny(model, data, epochs, checkpoint_dir, resume)


@pytest.mark.parametrize("key", list(SETTINGS))
def test_two_hundred_steps_at_a_high_learning_rate_stay_finite(key):
    model, h = _train(key, epochs=20 if key == "cavga-w" else 23)  # 10 / 9 batches per epoch
    assert h.global_step >= 200
    assert assert_finite(model, h).shape == (3, 8, 8)


def test_advae_rows_at_a_high_learning_rate_stay_finite():
    rows, _, _ = table_toy()
    det = Detector("advae", progress=False, device="cpu", epochs=20, batch_size=16, lr=1e-2, val_fraction=0)
    with pytest.warns(UserWarning, match="no held-out normal data"):
        det.fit(rows[:160])  # 10 batches per epoch
    assert det.history_.global_step >= 200
    assert all(np.isfinite(v).all() for v in det.history_.logs.values())
    assert np.isfinite(det.decision_function(rows)).all()


@pytest.mark.parametrize("key", ["advae", "cavga-w"])
def test_resume_after_a_kill_equals_an_uninterrupted_run(key, tmp_path, monkeypatch):
    """adVAE: two optimisers and the sampling RNG; cavga w: labels, classifier and D."""
    cls = type(build_model(key.split("-")[0], **_tiny(key)))
    assert_resume_equals_uninterrupted(cls, partial(_train, key), tmp_path / "ck", monkeypatch)


# --------------------------------------------------------------------- label policy
def test_label_policy(caplog):
    train, _, _ = image_toy()
    one = np.r_[np.ones(1), np.zeros(len(train) - 1)]
    for name, opts in (("advae", {}), ("cavga", {}), ("cavga", {"variant": "u"})):
        caplog.clear()
        with caplog.at_level("WARNING", logger="reconad"):
            det = Detector(name, image_size=16, **BASE, **opts, epochs=1).fit(train, y=one)
        assert "1 of 160 samples y marks as anomalies are kept out of training" in caplog.text, name
        assert det.history_ is not None
    with pytest.raises(DataError, match="labelled anomalies") as err:
        Detector("cavga", image_size=16, **BASE, variant="w", epochs=1).fit(train)
    assert "\n" not in str(err.value)
    assert CAVGA.uses_labels_for({"variant": "w"}) and not CAVGA.uses_labels_for({})
    assert not CAVGA.uses_labels and not build_model("advae", input_shape=[4]).uses_labels


def test_bad_options_are_refused_in_one_line():
    rows, _, _ = table_toy()
    with pytest.raises(ConfigError, match="takes images only"):
        Detector("cavga", **BASE).fit(rows)
    bad = [
        ("advae", {"gamma": -1.0}, "gamma"),
        ("advae", {"m_x": "2"}, "m_x"),
        ("advae", {"n_samples": 0}, "n_samples"),
        ("advae", {"norm": "zzz"}, "norm"),
        ("cavga", {"variant": "x"}, "variant"),
        ("cavga", {"w_ae": -0.1}, "w_ae"),
        ("cavga", {"min_stages": 0}, "min_stages"),
        ("cavga", {"betas_g": [0.5]}, "betas_g"),
    ]
    for name, opts, word in bad:
        with pytest.raises(ConfigError, match=word) as err:
            build_model(name, input_shape=[3, 16, 16], **opts)
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="calibration"):
        Detector("advae", calibration="zzz").check_params()
