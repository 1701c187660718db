"""AE and VAE on rows and images: they learn toy problems, score deterministically, save and load."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from helpers.recon_toys import image_toy, table_toy
from reconad import Detector
from reconad.data.records import RowBatch
from reconad.models import build_model

pytestmark = pytest.mark.usefixtures("single_thread")
FAST = {"epochs": 25, "batch_size": 32, "progress": False, "patience": None}


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_learns_table_toy(model):
    train, test, labels = table_toy()
    det = Detector(model, **FAST).fit(train)
    assert det.model_.is_table
    assert roc_auc_score(labels, det.decision_function(test)) > 0.9


@pytest.mark.parametrize("model", ["ae", "vae"])
def test_learns_image_toy_with_maps(model):
    train, test, labels = image_toy()
    det = Detector(model, image_size=16, **FAST).fit(train)
    scores, maps = det.score_and_map(test)
    assert maps.shape == (len(test), 16, 16)
    assert roc_auc_score(labels, scores) > 0.9


def test_conv_networks_restore_odd_sizes():
    for size in (28, 32, 37):
        m = build_model("ae", input_shape=[3, size, size]).eval()
        scores, maps = m.score_images(torch.rand(2, 3, size, size))
        assert scores.shape == (2,) and maps.shape == (2, size, size)


def test_vae_score_is_kl_plus_reconstruction_and_deterministic():
    m = build_model("vae", input_shape=[6], n_samples=64).eval()
    m.scaler.fit(torch.randn(50, 6))
    x = torch.randn(5, 6)
    s1, _ = m.predict_step(RowBatch(x))
    s2, _ = m.predict_step(RowBatch(x))
    assert torch.allclose(s1, s2)
    # an image's score depends on that input only, not on its batch or its place in it
    alone, _ = m.predict_step(RowBatch(x[3:4]))
    flipped, _ = m.predict_step(RowBatch(x.flip(0)))
    torch.testing.assert_close(alone[0], s1[3])
    torch.testing.assert_close(flipped.flip(0), s1)
    # The KL part alone is positive on average (64 draws): the score exceeds the reconstruction part.
    _, err = m.score(m.scaler(x))
    rec = err.sum(1) / (2 * m._sigma2())
    assert (s1 - rec).mean() > 0


@pytest.mark.parametrize("model,kind", [("vae", "table"), ("ae", "image")])
def test_save_load_round_trip(tmp_path, model, kind):
    train, test, _ = table_toy() if kind == "table" else image_toy()
    opts = dict(FAST, epochs=2)
    det = Detector(model, **opts) if kind == "table" else Detector(model, image_size=16, **opts)
    det.fit(train)
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    assert back.model_.config.input_shape == det.model_.config.input_shape
    np.testing.assert_allclose(back.decision_function(test), det.decision_function(test), rtol=1e-5, atol=1e-6)
    if kind == "table":
        assert bool(back.model_.scaler.fitted)
        torch.testing.assert_close(back.model_.scaler.shift, det.model_.scaler.shift)
