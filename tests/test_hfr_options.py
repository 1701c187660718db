"""HFR's optional levers: nearest-neighbour hybrids, a bottleneck memory, per-level scores,
presets, and learning from a few labelled anomalies (with and without masks)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset

from helpers.pasting import paste_square
from reconad import Detector
from reconad.data import FolderDataset, MVTecDataset
from reconad.errors import ConfigError, DataError

SIZE = 64
FAST = dict(
    image_size=SIZE,
    epochs=3,
    batch_size=8,
    lr=1e-2,
    width=32,
    bottleneck=16,
    device="cpu",
    progress=False,
    patience=None,
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def data(tiny_mvtec):
    return MVTecDataset(tiny_mvtec, "brick", "train", SIZE), MVTecDataset(tiny_mvtec, "brick", "test", SIZE)


def _normals(test) -> torch.Tensor:
    return torch.stack([test[i].image for i in range(len(test)) if test[i].label == 0])


@pytest.mark.parametrize("hybrid", ["patch", "bottleneck", "pooled"])
def test_hybrid_terms_fit_score_and_survive_save_load(data, hybrid, tmp_path):
    det = Detector("hfr", hybrid=hybrid, hybrid_budget=64, **FAST).fit(data[0])
    term = det.model_.nearest
    assert term is not None and 0 < term.bank.shape[0] <= 64 and float(term.std) > 0
    x = _normals(data[1])
    bad, _ = paste_square(x)
    s_norm, m_norm = det.model_.score_images(x)
    s_bad, _ = det.model_.score_images(bad)
    assert float(s_bad.min()) > float(s_norm.max())
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    torch.testing.assert_close(back.model_.score_images(x).scores, s_norm)
    plain = Detector("hfr", hybrid="none", **FAST).fit(data[0])
    if hybrid == "pooled":  # the pooled term enters the image score only, never the map
        torch.testing.assert_close(plain.model_.score_images(x).maps, m_norm)


def test_max_fusion_on_tail_scales_keeps_each_term_and_survives_save_load(data, tmp_path):
    from reconad.models.encoder_features import FeatureCache

    det = Detector(
        "hfr", hybrid="patch", hybrid_weight=1.0, hybrid_fusion="max", hybrid_scale="tail", hybrid_budget=64, **FAST
    )
    model = det.fit(data[0]).model_
    x = _normals(data[1])
    bad, _ = paste_square(x)
    s_norm, s_bad = model.score_images(x).scores, model.score_images(bad).scores
    assert float(s_bad.min()) > float(s_norm.max())
    with torch.no_grad():
        feats = model.encoder(x)
        model._fit_tails(FeatureCache(feats), torch.device("cpu"))  # the tails of these very images
        residual, _ = model._residual_map(feats)
        nearest = model._nearest_map(feats, tuple(residual.shape[-2:]))
        r = (residual - model.tail[0]) / model.tail[1]
        n = (nearest - model.tail[2]) / model.tail[3]
        for scaled in (r, n):  # 1 is the 99th percentile of each map, 0 its median
            assert abs(float(torch.quantile(scaled.flatten(), 0.99)) - 1.0) < 0.02
            assert abs(float(scaled.flatten().median())) < 0.02
        torch.testing.assert_close(model._combine(residual, nearest), torch.maximum(r, n))
        model.config.hybrid_fusion = "sum"
        torch.testing.assert_close(model._combine(residual, nearest), r + n)
        model.config.hybrid_fusion = "max"
    det.fit(data[0]).save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    torch.testing.assert_close(back.model_.tail, det.model_.tail)
    torch.testing.assert_close(back.model_.score_images(x).scores, det.model_.score_images(x).scores)
    with pytest.raises(ConfigError, match="hybrid_fusion"):
        Detector("hfr", hybrid="patch", hybrid_fusion="mean", **FAST).fit(data[0])


def test_bottleneck_memory_addresses_sparsely_and_trains(data):
    det = Detector("hfr", memory_slots=20, **FAST).fit(data[0])
    model = det.model_
    model.score_images(_normals(data[1]))
    w = model.decoder.addressing
    assert w is not None and w.shape[1] == 20
    assert torch.allclose(w.sum(dim=1), torch.ones(len(w)), atol=1e-4)
    assert float((w > 0).float().sum(dim=1).mean()) < 20  # hard shrinkage zeroes some slots
    assert np.isfinite(det.history_.train_loss).all()


def test_level_topk_score_and_the_paper_preset(data):
    det = Detector("hfr", score="level-topk", **FAST).fit(data[0])
    x = _normals(data[1])
    bad, _ = paste_square(x)
    assert float(det.model_.score_images(bad).scores.min()) > float(det.model_.score_images(x).scores.max())
    paper = Detector("hfr", preset="paper", **FAST)
    assert paper.model_config["score"] == "max" and paper.model_config["normalization"] == "none"
    mine = Detector("hfr", preset="paper", score="topk", **FAST)
    assert mine.model_config["score"] == "topk"  # an option given beside the preset wins
    with pytest.raises(ConfigError, match="unknown preset 'fast'"):
        Detector("hfr", preset="fast").check_params()


def _labelled(tiny_mvtec):
    """The fixture's defect images (hole, scratch, stain, foreign) as a labelled folder with masks."""
    root = tiny_mvtec / "brick"
    parts = [
        FolderDataset(None, root / "test" / d, root / "ground_truth" / d, image_size=SIZE)
        for d in ("hole", "scratch", "stain", "foreign")
    ]
    return ConcatDataset(parts)


def test_labelled_anomalies_push_their_residual_up_inside_the_mask(data, tiny_mvtec, caplog):
    train = data[0]
    labelled = _labelled(tiny_mvtec)
    opts = {**FAST, "epochs": 6, "val_fraction": 0.25}
    plain = Detector("hfr", **opts).fit(train)
    semi = Detector("hfr", **opts).fit(ConcatDataset([train, labelled]))  # labels come from the datasets
    assert set(semi.history_.logs) >= {"reconstruction", "deviation"}
    assert semi.history_.logs["deviation"][-1] < semi.history_.logs["deviation"][0]
    items = [labelled[i] for i in range(len(labelled))]
    x = torch.stack([it.image for it in items])
    inside = torch.stack([it.mask[0] for it in items])[:, None]

    def contrast(det: Detector) -> float:
        """Raw residual inside the defects minus outside, averaged over the levels."""
        model = det.model_
        with torch.no_grad():
            feats = model.encoder(x)
            res = model.level_residuals(feats, model.decode(feats))
        out = []
        for r in res:
            m = torch.nn.functional.interpolate(inside, size=r.shape[-2:], mode="area")[:, 0] > 0.5
            out.append(float(r[m].mean() - r[~m].mean()))
        return float(np.mean(out))

    assert contrast(semi) > contrast(plain) + 0.05
    # a model of normal data keeps the labelled anomalies out of its training, with one warning
    with caplog.at_level(logging.WARNING, logger="reconad"):
        Detector("patchcore", image_size=SIZE, device="cpu", progress=False).fit(ConcatDataset([train, labelled]))
    assert f"the {len(labelled)} of {len(train) + len(labelled)} samples y marks as anomalies" in caplog.text


def test_image_level_labels_without_masks_train_too(data):
    train = data[0]
    imgs = torch.stack([train[i].image for i in range(len(train))])
    bad, _ = paste_square(imgs[:3])
    x = torch.cat([imgs, bad]).permute(0, 2, 3, 1).numpy()
    y = np.r_[np.zeros(len(imgs)), np.ones(3)]
    det = Detector("hfr", **FAST).fit(x, y)
    assert "deviation" in det.history_.logs and np.isfinite(det.history_.logs["deviation"]).all()


def test_a_mask_of_another_size_is_refused_naming_the_mask(tmp_path):
    from PIL import Image

    (tmp_path / "bad").mkdir()
    (tmp_path / "masks").mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "bad" / "a.png")
    Image.fromarray(np.zeros((16, 20), np.uint8)).save(tmp_path / "masks" / "a_mask.png")
    ds = FolderDataset(None, tmp_path / "bad", tmp_path / "masks", image_size=SIZE)
    with pytest.raises(DataError, match=r"a_mask.png is 20x16 pixels but its image .*a.png is 32x32"):
        ds[0]
