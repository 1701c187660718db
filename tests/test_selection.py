"""``Detector("auto")``: candidates trained, scored on synthetic defects in held-out normals,
the best kept and recorded; too few normals fall back in one line; failures are reported."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from reconad import Detector
from reconad.data import MVTecDataset
from reconad.errors import ConfigError
from reconad.selection import CANDIDATES, FALLBACK, Candidate

SIZE = 64
FAST = dict(image_size=SIZE, epochs=2, batch_size=8, lr=1e-2, device="cpu", progress=False, patience=None)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def train(tiny_mvtec):
    return MVTecDataset(tiny_mvtec, "brick", "train", SIZE)


def _rank(r: dict) -> tuple:
    return (r["synthetic_image_auroc"], r["synthetic_pixel_auroc"], -r["cost"])


def test_auto_trains_the_candidates_keeps_the_best_and_records_it(train, tmp_path):
    det = Detector("auto", **FAST).fit(train)
    sel = det.selection_
    assert sel is not None and [r["label"] for r in sel["candidates"]] == [c.label for c in CANDIDATES]
    for r in sel["candidates"]:
        assert 0 <= r["synthetic_image_auroc"] <= 1 and 0 <= r["synthetic_pixel_auroc"] <= 1
    best = max(sel["candidates"], key=_rank)
    assert sel["chosen"] == best["label"] and det.model_name == best["model"]
    assert {k: det.model_.config.to_dict()[k] for k in best["options"]} == best["options"]
    # 16 images: 6 set aside to calibrate (all but 10), then 10 % of the other 10 held out
    assert sel["validation"]["normals"] == 1 and sel["validation"]["defects"] == 2
    assert det.threshold_ is not None and det.get_params()["model"] == "auto"
    x = torch.stack([train[i].image for i in range(3)])
    scores = det.decision_function(x)
    det.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config.json").read_text())
    assert saved["model"] == best["model"] and saved["selection"]["chosen"] == best["label"]
    back = Detector.load(tmp_path / "m")
    assert back.selection_ == json.loads(json.dumps(sel))
    np.testing.assert_allclose(back.decision_function(x), scores, rtol=1e-5)


def test_fewer_than_ten_normals_fall_back_to_one_named_model_in_one_line(train):
    small = torch.utils.data.Subset(train, list(range(8)))
    with pytest.warns(UserWarning, match=r"auto: 8 normal images are too few") as record:
        det = Detector("auto", **FAST).fit(small)
    assert all("\n" not in str(w.message) for w in record)
    assert det.model_name == FALLBACK and det.selection_["chosen"] == FALLBACK and det.selection_["candidates"] == []


def test_a_candidate_that_fails_is_reported_and_skipped(train):
    broken = Candidate("broken", "hfr", {"width": 2}, 0)  # width < 8: a ConfigError at build time
    det = Detector("auto", **FAST)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det.fit_auto(train, candidates=(broken, CANDIDATES[1]))
    assert any("candidate broken failed and is skipped" in str(w.message) for w in caught)
    rec = {r["label"]: r for r in det.selection_["candidates"]}
    assert "width" in rec["broken"]["error"] and rec["broken"]["synthetic_image_auroc"] is None
    assert det.selection_["chosen"] == "hfr" and det.model_name == "hfr"


def test_auto_refuses_model_options_and_sklearn_clone_keeps_it(train):
    with pytest.raises(ConfigError, match="model='auto' takes engine and detector options only.*width") as info:
        Detector("auto", width=32).check_params()
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="preset"):
        Detector("auto", preset="paper").check_params()
    from sklearn.base import clone

    det = clone(Detector("auto", epochs=3))
    assert det.get_params()["model"] == "auto" and det.get_params()["epochs"] == 3


def test_the_paper_preset_stays_the_papers_plain_hfr(train):
    """``preset="paper"`` is reachable by name and gives the plain model: equal level
    weights, no normalisation, the map's maximum, no denoising, no nearest-neighbour term."""
    det = Detector("hfr", preset="paper", **FAST).fit(train)
    cfg = det.model_.config
    assert (cfg.level_weights, cfg.normalization, cfg.score) == ([1.0, 1.0, 1.0], "none", "max")
    assert (cfg.denoise, cfg.hybrid, cfg.feature_noise, cfg.memory_slots) == ("none", "none", 0.0, 0)


def test_a_candidate_of_the_same_training_takes_the_trained_weights_and_scores_as_if_trained(train, monkeypatch):
    """``hfr-patch`` differs from ``hfr`` only in how it scores: auto fits it with hfr's
    weights (no epoch runs), and it scores as an ``hfr-patch`` trained on its own does."""
    from reconad.engine.trainer import Trainer

    x = torch.stack([train[i].image for i in range(4)])
    plain = Detector("hfr", **FAST).fit(train)
    alone = Detector("hfr", hybrid="patch", **FAST).fit(train)
    epochs: list[int] = []
    real_epoch = Trainer._train_epoch
    monkeypatch.setattr(Trainer, "_train_epoch", lambda self, run, e: epochs.append(e) or real_epoch(self, run, e))
    shared = Detector("hfr", hybrid="patch", **FAST).fit_sharing(plain, train)
    assert epochs == [] and shared.history_ is plain.history_
    np.testing.assert_allclose(shared.decision_function(x), alone.decision_function(x), rtol=1e-4, atol=1e-5)
    assert shared.threshold_ == pytest.approx(alone.threshold_, rel=1e-4, abs=1e-5)
    with pytest.raises(ConfigError, match="fit_sharing needs a fitted Detector"):
        Detector("hfr", **FAST).fit_sharing(Detector("hfr"), train)
    with pytest.raises(ConfigError, match="of the same model"):
        Detector("patchcore", **FAST).fit_sharing(plain, train)
    det = Detector("auto", **FAST).fit_auto(train, candidates=CANDIDATES[1:3], keep=True)
    rec = {r["label"]: r for r in det.selection_["candidates"]}
    assert rec["hfr-patch"]["trained_with"] == "hfr" and "trained_with" not in rec["hfr"]
    assert det.candidates_["hfr-patch"].history_ is det.candidates_["hfr"].history_
