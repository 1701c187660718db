"""ESAD: learns without labels, and labelled anomalies help where reconstruction cannot tell."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from helpers.recon_toys import image_toy, table_toy
from reconad import Detector
from reconad.models import build_model

pytestmark = pytest.mark.usefixtures("single_thread")
FAST = {"epochs": 30, "batch_size": 32, "progress": False, "patience": None}


def ring_toy(seed: int = 0):
    """Normals on a ring in a 2-D plane of 10-D space; anomalies at the ring's centre.

    The anomalies lie on the normal plane, inside the normal range, so a model of the
    normals reconstructs them well: only labels tell them apart."""
    rng = np.random.default_rng(seed)
    basis = np.random.default_rng(7).normal(size=(2, 10))

    def ring(n):
        a = rng.uniform(0, 2 * np.pi, n)
        r = rng.uniform(2.0, 3.0, n)
        return np.c_[r * np.cos(a), r * np.sin(a)] @ basis + 0.05 * rng.normal(size=(n, 10))

    def centre(n):
        return 0.4 * rng.normal(size=(n, 2)) @ basis + 0.05 * rng.normal(size=(n, 10))

    train = np.vstack([ring(400), centre(20)]).astype(np.float32)
    y = np.r_[np.zeros(400), np.ones(20)].astype(int)
    test = np.vstack([ring(150), centre(50)]).astype(np.float32)
    return train, y, test, np.r_[np.zeros(150), np.ones(50)]


def test_declares_label_use():
    assert build_model("esad", input_shape=[4]).uses_labels
    assert not build_model("ae", input_shape=[4]).uses_labels


def test_learns_table_toy_without_labels():
    train, test, labels = table_toy()
    det = Detector("esad", **FAST).fit(train)
    assert roc_auc_score(labels, det.decision_function(test)) > 0.9


def test_labels_beat_no_labels_where_they_matter():
    train, y, test, labels = ring_toy()
    unlabelled = Detector("esad", **FAST).fit(train[y == 0])
    labelled = Detector("esad", **FAST).fit(train, y)
    auc_u = roc_auc_score(labels, unlabelled.decision_function(test))
    auc_l = roc_auc_score(labels, labelled.decision_function(test))
    assert auc_l > 0.9
    assert auc_l > auc_u + 0.1


def test_labelled_anomalies_push_the_code_away():
    torch.manual_seed(0)
    m = build_model("esad", input_shape=[5])
    x = torch.randn(8, 5)
    # Same inputs: the loss is lower when they are called anomalies iff ||z_hat||^2 > 1 for them.
    z_hat = m.codes(x)[2]
    norm2 = (z_hat**2).sum(1)
    l0 = m.loss(x, torch.zeros(8, dtype=torch.long))
    l1 = m.loss(x, torch.ones(8, dtype=torch.long))
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
