"""ESAD: learns without labels, and labelled anomalies help where reconstruction cannot tell."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from helpers.recon_toys import image_toy, table_toy
from reconad import Detector
from reconad.errors import ConfigError
from reconad.models import build_model

pytestmark = pytest.mark.usefixtures("single_thread")
FAST = {"epochs": 30, "batch_size": 32, "progress": False, "patience": None}


def arc_toy(seed: int = 0):
    """Normals on three quarters of a ring in a 2-D plane of 10-D space; anomalies in the gap.

    The anomalies lie on the ring's plane and radius, inside the normal range of every
    feature, so a model of the normals reconstructs them well: labels tell them apart.
    (Not the ring's centre: bias-free encoders map the standardised origin to a code
    near 0, far from the centre c, so it is found without labels.)"""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(7).normal(size=(2, 10))

    def arc(n, lo, hi):
        a = rng.uniform(lo, hi, n)
        r = rng.uniform(2.0, 3.0, n)
        return np.c_[r * np.cos(a), r * np.sin(a)] @ basis + 0.05 * rng.normal(size=(n, 10))

    normal, gap = (0.0, 1.6 * np.pi), (1.75 * np.pi, 1.95 * np.pi)
    train = np.vstack([arc(400, *normal), arc(20, *gap)]).astype(np.float32)
    y = np.r_[np.zeros(400), np.ones(20)].astype(int)
    test = np.vstack([arc(150, *normal), arc(50, *gap)]).astype(np.float32)
    return train, y, test, np.r_[np.zeros(150), np.ones(50)]


def test_declares_label_use():
    assert build_model("esad", input_shape=[4]).uses_labels
    assert not build_model("ae", input_shape=[4]).uses_labels


def test_learns_table_toy_without_labels():
    train, test, labels = table_toy()
    det = Detector("esad", **FAST).fit(train)
    assert roc_auc_score(labels, det.decision_function(test)) > 0.9


def test_labels_beat_no_labels_where_they_matter():
    train, y, test, labels = arc_toy()
    unlabelled = Detector("esad", **FAST).fit(train[y == 0])
    labelled = Detector("esad", **FAST).fit(train, y)
    auc_u = roc_auc_score(labels, unlabelled.decision_function(test))
    auc_l = roc_auc_score(labels, labelled.decision_function(test))
    assert auc_l > 0.97
    assert auc_l > auc_u + 0.05


def test_labelled_anomalies_push_the_code_away():
    torch.manual_seed(0)
    m = build_model("esad", input_shape=[5])
    x = torch.randn(8, 5)
    # Same inputs: the loss is lower when they are called anomalies iff ||z_hat - c||^2 > 1 for them.
    l0 = m.loss(x, torch.zeros(8, dtype=torch.long))  # the first batch also fixes the centre c
    l1 = m.loss(x, torch.ones(8, dtype=torch.long))
    norm2 = m.latent_term(m.codes(x)[2])
    rec = ((x - m.codes(x)[1]) ** 2).mean(1)
    expected = (1 / (norm2 + 1e-6) - norm2 - rec).mean()
    torch.testing.assert_close(l1 - l0, expected, rtol=1e-4, atol=1e-5)


def test_image_labels_reach_the_batches_and_stay_out_of_validation():
    train, test, labels = image_toy()
    rng = np.random.default_rng(1)
    from helpers.recon_toys import bar_images

    x = np.concatenate([train, bar_images(8, rng, vertical=True)])
    y = np.r_[np.zeros(len(train)), np.ones(8)].astype(int)
    det = Detector("esad", image_size=16, **dict(FAST, epochs=3))
    tr, val = det._holdout(det._dataset(x, y), y)
    assert all(val[i].label == 0 for i in range(len(val)))
    assert sum(tr[i].label for i in range(len(tr))) == 8
    det.fit(x, y)
    assert det.decision_function(test).shape == (len(test),)


@pytest.mark.parametrize(
    ("bias_free", "e1_bias", "e2_bias"), [("none", True, True), ("second", True, False), ("both", False, False)]
)
def test_bias_free_encoders_have_no_additive_terms(bias_free, e1_bias, e2_bias):
    m = build_model("esad", input_shape=[1, 16, 16], bias_free=bias_free)

    def has_bias(net):
        return any(n.endswith("bias") for n, _ in net.named_parameters())

    assert (has_bias(m.encoder), has_bias(m.encoder2)) == (e1_bias, e2_bias)
    assert has_bias(m.decoder)
    zero = m.encoder2(torch.zeros(2, 1, 16, 16))
    assert bool((zero == 0).all()) == (not e2_bias)


@pytest.mark.parametrize(("option", "value"), [("center", "middle"), ("bias_free", "first"), ("score", "sum")])
def test_unknown_option_values_are_refused_naming_the_option(option, value):
    with pytest.raises(ConfigError, match=f"unknown {option} {value!r}"):
        build_model("esad", input_shape=[4], **{option: value})


def test_initial_center_is_fitted_once_from_the_untrained_codes():
    torch.manual_seed(0)
    m = build_model("esad", input_shape=[5], center="initial", bias_free="second")
    x, labels = torch.randn(16, 5), torch.zeros(16, dtype=torch.long)
    expected = m.codes(x)[2].detach().mean(0)
    expected = torch.where(expected.abs() < 0.1, torch.where(expected < 0, -0.1, 0.1), expected)
    m.loss(x, labels)
    torch.testing.assert_close(m.center, expected)
    m.loss(torch.randn(16, 5) + 3, labels)  # a later batch does not move it
    torch.testing.assert_close(m.center, expected)
    z_hat = m.codes(x)[2]
    torch.testing.assert_close(m.latent_term(z_hat), ((z_hat - expected) ** 2).sum(1))


def test_center_and_term_means_survive_save_and_load(tmp_path):
    train, test, _ = table_toy()
    opts = dict(FAST, epochs=3, center="initial", bias_free="second", score="balanced")
    det = Detector("esad", **opts).fit(train)
    assert float(det.model_.center.abs().min()) >= 0.1
    again = Detector.load(det.save(tmp_path / "run"))
    np.testing.assert_allclose(again.decision_function(test), det.decision_function(test), rtol=1e-6)


@pytest.mark.parametrize(("score", "n_terms"), [("balanced", 3), ("recon+consistency", 2)])
def test_balanced_scores_weigh_each_term_by_its_training_mean(score, n_terms):
    train, test, labels = table_toy()
    with pytest.warns(UserWarning, match="no held-out normal data"):
        det = Detector("esad", **dict(FAST, score=score, val_fraction=0.0)).fit(train)
    # Each term divided by its own mean over the training rows: the score averages n_terms there.
    assert det.decision_function(train).mean() == pytest.approx(n_terms, rel=1e-4)
    assert roc_auc_score(labels, det.decision_function(test)) > 0.9


def test_a_model_saved_before_the_centre_and_bias_options_loads_as_it_was_trained(tmp_path):
    """Files written before ``center`` / ``bias_free`` existed hold origin-centred, biased nets."""
    import json

    train, test, _ = table_toy()
    old = Detector("esad", **dict(FAST, epochs=3, center="origin", bias_free="none", score="latent+recon")).fit(train)
    path = old.save(tmp_path / "old")
    cfg = json.loads((path / "config.json").read_text())
    for key in ("center", "bias_free", "autoencoder_batchnorm"):
        del cfg["model_config"][key]
    (path / "config.json").write_text(json.dumps(cfg))
    again = Detector.load(path)
    assert (again.model_.config.center, again.model_.config.bias_free) == ("origin", "none")
    np.testing.assert_allclose(again.decision_function(test), old.decision_function(test), rtol=1e-6)
