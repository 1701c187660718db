"""ALOCC, the constrained AAE, ADAE and RSRAE.

Each model learns the separable toys (16 px bars; a table near a plane for the models
with a table variant), trains 200 steps at a high learning rate without a non-finite
value, resumes after a kill to the same weights, saves and loads to the same scores, and
refuses what it cannot do in one line.  Models are small (width 8) and each image model
trains once per module (helpers.recon_training); ONNX parity: tests/test_engine_parity.py.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from helpers.recon_toys import image_toy, table_toy
from helpers.recon_training import (
    assert_finite,
    assert_learns_the_bars,
    assert_resume_equals_uninterrupted,
    bars_fitter,
    fit_tiny,
    tiny_images,
)
from reconad import Detector
from reconad.errors import ConfigError, DataError
from reconad.models import build_model

pytestmark = pytest.mark.usefixtures("single_thread")

BASE = {"progress": False, "device": "cpu", "width": 8, "batch_size": 32}
#: toy settings per model (enough steps at a toy's learning rate to separate the bars)
IMAGE_SETTINGS = {
    "alocc": {"epochs": 20},
    "aae": {"epochs": 20, "lr": 1e-3},
    "adae": {"epochs": 30},
    "rsrae": {"epochs": 20, "lr": 1e-3, "lr_rsr": 1e-2},
}
MODELS = tuple(IMAGE_SETTINGS)
TABLE_MODELS = ("aae", "adae", "rsrae")


@pytest.fixture(scope="module")
def fitted(bars):
    """Each image model trained once on the bars (lazily, by name)."""
    return bars_fitter(bars, BASE, IMAGE_SETTINGS)


@pytest.mark.parametrize("name", MODELS)
def test_learns_the_bars_with_maps(name, fitted, bars):
    assert_learns_the_bars(fitted(name), bars, 0.85)


@pytest.mark.parametrize("name", TABLE_MODELS)
def test_table_variants_learn_the_plane(name, tmp_path):
    train, test, labels = table_toy()
    det = Detector(name, **{**BASE, "epochs": 10, "lr": 1e-3}).fit(train)
    assert det.model_.data_kind == "table"
    scores = det.decision_function(test)
    assert roc_auc_score(labels, scores) > 0.85
    with pytest.raises(ConfigError, match="anomaly maps exist for images only"):
        det.anomaly_map(test)
    det.save(tmp_path / "m")  # the row scaler travels with the weights
    np.testing.assert_array_equal(Detector.load(tmp_path / "m").decision_function(test), scores)


@pytest.mark.parametrize("name", MODELS)
def test_save_load_gives_identical_scores(name, fitted, bars, tmp_path):
    _, test, _ = bars
    det = fitted(name)
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    np.testing.assert_array_equal(back.decision_function(test), det.decision_function(test))
    np.testing.assert_array_equal(back.anomaly_map(test[:4]), det.anomaly_map(test[:4]))


# ------------------------------------------------------------------ engine behaviour
def _train(name: str, epochs: int, checkpoint_dir=None, resume: bool = False):
    """The smallest networks of a model (8 px images, width 4) at a high learning rate."""
    torch.manual_seed(0)
    kw = {} if name == "alocc" else {"latent_dim": 8}
    model = build_model(name, input_shape=[3, 8, 8], width=4, **kw)
    return model, fit_tiny(model, tiny_images(), epochs, checkpoint_dir, resume)


@pytest.mark.parametrize("name", MODELS)
def test_two_hundred_steps_at_a_high_learning_rate_stay_finite(name):
    model, h = _train(name, epochs=20)  # 40 images / batch 4 = 10 steps per epoch
    assert h.global_step == 200
    assert_finite(model, h)


@pytest.mark.parametrize("name", MODELS)
def test_resume_after_a_kill_equals_an_uninterrupted_run(name, tmp_path, monkeypatch):
    """ALOCC: input noise and two R steps; AAE: prior draws, three optimisers; ADAE: two
    autoencoders; RSRAE: three optimisers sharing the RSR layer."""
    cls = type(build_model(name, input_shape=[3, 8, 8], width=4))
    assert_resume_equals_uninterrupted(cls, partial(_train, name), tmp_path / "ck", monkeypatch)


def test_rsrae_joint_training_has_one_optimiser_and_learns():
    model = build_model("rsrae", input_shape=[10], training="joint")
    assert set(model.optimizer_specs()) == {"ae"}
    train, test, labels = table_toy()
    det = Detector("rsrae", **{**BASE, "epochs": 10, "lr": 1e-3, "training": "joint", "score": "l2"}).fit(train)
    assert roc_auc_score(labels, det.decision_function(test)) > 0.85


def test_rsrae_scores_table_rows_by_residual_size_so_scaled_up_outliers_are_found():
    """Outlier rows that are normal rows times four: same direction, larger values (a
    z-scored outlier's usual shape).  The cosine score ranks them as normal; the table
    default (score="auto": l2) finds them."""
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 10))
    train = (rng.normal(size=(400, 3)) @ basis).astype(np.float32)
    normal = rng.normal(size=(60, 3)) @ basis
    test = np.concatenate([normal, 4.0 * (rng.normal(size=(20, 3)) @ basis)]).astype(np.float32)
    labels = np.r_[np.zeros(60), np.ones(20)]
    aurocs = {}
    for score in ("auto", "cosine"):
        det = Detector("rsrae", **{**BASE, "epochs": 10, "lr": 1e-3, "score": score}).fit(train)
        aurocs[score] = roc_auc_score(labels, det.decision_function(test))
    assert aurocs["auto"] > 0.9 and aurocs["auto"] > aurocs["cosine"] + 0.2, aurocs


# -------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name", MODELS)
def test_a_y_of_anomalies_only_is_refused_in_one_line(name):
    train, _, _ = image_toy()
    with pytest.raises(DataError, match="y marks all 160 samples as anomalies") as err:
        Detector(name, image_size=16, **BASE).fit(train, y=np.ones(len(train)))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "option", "match"),
    [
        ("alocc", {"noise_std": -0.1}, "noise_std"),
        ("alocc", {"r_steps": 0}, "r_steps"),
        ("alocc", {"d_norm": "group"}, "d_norm"),
        ("aae", {"disc_hidden": []}, "disc_hidden"),
        ("aae", {"w_consistency": "high"}, "w_consistency"),
        ("aae", {"norm": "group"}, "norm"),
        ("adae", {"score": "cosine"}, "score"),
        ("adae", {"w_fake": -1}, "w_fake"),
        ("rsrae", {"training": "sgd"}, "training"),
        ("rsrae", {"lr_rsr": 0}, "lr_rsr"),
        ("rsrae", {"renormalize": "yes"}, "renormalize"),
    ],
)
def test_a_bad_option_is_a_one_line_config_error(name, option, match):
    with pytest.raises(ConfigError, match=match) as err:
        build_model(name, input_shape=[3, 16, 16], **option)
    assert "\n" not in str(err.value)


def test_aae_networks_keep_no_batch_statistics_by_default():
    """The consistency term encodes reconstructions too: batch norm's running statistics
    would mix them with real images and spoil the test-time codes."""
    model = build_model("aae", input_shape=[1, 16, 16])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert any(
        isinstance(m, torch.nn.BatchNorm2d) for m in build_model("aae", input_shape=[1, 16, 16], norm="batch").modules()
    )


def test_alocc_takes_images_only():
    rows, _, _ = table_toy()
    with pytest.raises(ConfigError, match="takes images only"):
        Detector("alocc", **BASE).fit(rows)
