"""PatchCore, the reference model: coreset, bounded memory, scoring, save/load and export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers.pasting import paste_square
from reconad import Detector
from reconad.data import MVTecDataset
from reconad.data.records import FeatureBatch
from reconad.errors import ConfigError
from reconad.metrics import image_auroc, pixel_auroc
from reconad.models.coreset import greedy_coreset
from reconad.models.patchcore import PatchCoreConfig

SIZE = 64
FAST = dict(image_size=SIZE, device="cpu", progress=False)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def data(tiny_mvtec):
    return MVTecDataset(tiny_mvtec, "brick", "train", SIZE), MVTecDataset(tiny_mvtec, "brick", "test", SIZE)


@pytest.fixture(scope="module")
def fitted(single_thread, data):
    return Detector("patchcore", **FAST).fit(data[0])


def test_greedy_coreset_covers_every_cluster_and_is_seeded():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points = torch.cat([c + 0.1 * torch.randn(500, 2, generator=g) for c in centres])
    idx = greedy_coreset(points, 4, projection_dim=128, pool_factor=1000)
    chosen = points[idx]
    assert torch.cdist(centres, chosen).min(dim=1).values.max() < 1.0  # one point near every centre
    assert torch.equal(idx, greedy_coreset(points, 4, projection_dim=128, pool_factor=1000))
    assert len(greedy_coreset(points, 5000)) == len(points)  # asking for more keeps everything


def test_memory_stays_within_the_budget(data):
    det = Detector("patchcore", memory_budget=40, **FAST).fit(data[0])
    assert det.model_.memory.shape[0] == 40
    det = Detector("patchcore", coreset_ratio=0.01, **FAST).fit(data[0])
    # 16 images: 6 set aside to calibrate, 1 of the other 10 held out; a stride-8 grid of a 64 px image
    n_patches = (len(data[0]) - 6 - 1) * 8 * 8
    assert det.model_.memory.shape[0] == round(0.01 * n_patches) and det.history_.epochs_run == 0


def test_finds_and_localises_pasted_defects(fitted, data):
    test = data[1]
    x = torch.stack([test[i].image for i in range(len(test)) if test[i].label == 0])
    bad, mask = paste_square(x)
    s_norm, _ = fitted.model_.score_images(x)
    s_bad, m_bad = fitted.model_.score_images(bad)
    assert m_bad.shape == (len(x), SIZE, SIZE)
    y = np.r_[np.zeros(len(x)), np.ones(len(x))]
    assert image_auroc(y, torch.cat([s_norm, s_bad]).numpy()) == 1.0
    assert pixel_auroc(mask.expand(len(x), -1, -1).numpy(), m_bad.numpy()) > 0.9
    # the real (subtle) defects of the fixture are localised too
    maps = fitted.anomaly_map(test)
    masks = np.stack([test[i].mask[0].numpy() > 0.5 for i in range(len(test))])
    assert pixel_auroc(masks, maps) > 0.65  # 8 x 8 patch grid at 64 px: coarse, far above chance


def test_reweighting_shrinks_the_largest_patch_distance(fitted, data):
    model = fitted.model_
    levels = model.encoder(torch.stack([data[1][i].image for i in range(4)]))
    model.config.score = "reweighted"
    s = model.predict_step(FeatureBatch(levels)).scores
    s_star = model._score_levels(levels)[1].flatten(1).amax(dim=1)  # the raw patch distances' maximum
    assert (s <= s_star + 1e-6).all() and (s > 0).all()
    model.config.score = "max"
    try:
        torch.testing.assert_close(model.predict_step(FeatureBatch(levels)).scores, s_star)
    finally:
        model.config.score = "topk"


def test_topk_score_is_the_mean_of_the_top_share_of_the_smoothed_map(fitted, data):
    model = fitted.model_
    x = torch.stack([data[1][i].image for i in range(4)])
    _, maps = model.score_images(x)
    flat = maps.flatten(1)
    assert model.config.score == "topk"  # the default
    model.config.topk_ratio = 0.05
    try:
        s = model.score_images(x).scores
        k = round(0.05 * flat.shape[1])
        torch.testing.assert_close(s, flat.sort(dim=1, descending=True).values[:, :k].mean(dim=1))
        model.config.topk_ratio = 1.0 / flat.shape[1]  # one pixel: the map's maximum
        torch.testing.assert_close(model.score_images(x).scores, flat.amax(dim=1))
    finally:
        model.config.score, model.config.topk_ratio = "topk", 0.01
    with pytest.raises(ConfigError, match="topk_ratio"):
        PatchCoreConfig(score="topk", topk_ratio=0.0)
    with pytest.raises(ConfigError, match="unknown score"):
        PatchCoreConfig(score="top")


def test_save_load_and_onnx_export_give_the_same_scores(fitted, data, tmp_path):
    from reconad.export import OnnxDetector, export_onnx

    test = data[1]
    scores = fitted.decision_function(test)
    fitted.save(tmp_path / "m")
    np.testing.assert_array_equal(Detector.load(tmp_path / "m").decision_function(test), scores)
    path = export_onnx(fitted, tmp_path / "pc.onnx")
    x = torch.stack([test[i].image for i in range(3)])
    s_onnx, m_onnx = OnnxDetector(path)(x)
    s_t, m_t = fitted.model_.score_images(x)
    np.testing.assert_allclose(s_onnx, s_t.numpy(), rtol=1e-4, atol=1e-4)
    assert np.abs(m_onnx - m_t.numpy()).max() <= 1e-4 * float(m_t.max() - m_t.min())


def test_the_ensemble_preset_finds_defects_and_survives_save_load_and_export(data, tmp_path):
    """``preset="ensemble"``: Lite0 + Lite1 + Lite2 features joined; it scores, saves and
    exports like the one-encoder model."""
    from reconad.export import OnnxDetector, export_onnx

    det = Detector("patchcore", preset="ensemble", memory_budget=200, **FAST).fit(data[0])
    assert det.model_config["backbone"] == "efficientnet_lite_ensemble"
    assert det.model_.encoder.channels == [128, 344]  # stages 3 and 5 of the three members
    test = data[1]
    x = torch.stack([test[i].image for i in range(len(test)) if test[i].label == 0])
    bad, _ = paste_square(x)
    assert float(det.model_.score_images(bad).scores.min()) > float(det.model_.score_images(x).scores.max())
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    np.testing.assert_array_equal(back.decision_function(x), det.decision_function(x))
    s_onnx, _ = OnnxDetector(export_onnx(det, tmp_path / "e.onnx"))(x[:2])
    np.testing.assert_allclose(s_onnx, det.model_.score_images(x[:2]).scores.numpy(), rtol=1e-4, atol=1e-4)
