"""The adversarial family (AnoGAN, f-AnoGAN, EGBAD, ALAD, GANomaly, Skip-GANomaly).

Each model learns the separable toys (16 px bars; a table near a plane), trains 200
steps at a high learning rate without a non-finite value, resumes after a kill to the
same weights, saves and loads to the same scores, and refuses what it cannot do in one
line.  Models are small (width 8) and each image model trains once per module
(helpers.recon_training); ONNX parity: tests/test_engine_parity.py.
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
#: toy settings per image model (enough steps for each to separate the bars)
IMAGE_SETTINGS = {
    "ganomaly": {"epochs": 20},
    "skip_ganomaly": {"epochs": 12, "lr": 1e-3},
    "anogan": {"epochs": 60, "lr": 1e-3, "latent_dim": 16, "search_steps": 30, "search_lr": 0.1},
    "fanogan": {"epochs": 20, "batch_size": 16, "lr": 5e-4, "width": 16},
    # the paper's score: on bars of one ink G(E(x)) redraws a bar (the default, D's verdict
    # alone, is checked on real strokes in test_seed_ranking.py)
    "egbad": {"epochs": 25, "batch_size": 16, "joint": 64, "latent_dim": 16, "score": "fm", "alpha": 0.9},
    "alad": {"epochs": 20, "joint": 64},
}
TABLE_MODELS = ("ganomaly", "egbad", "alad")
GAN_MODELS = tuple(IMAGE_SETTINGS)


@pytest.fixture(scope="module")
def fitted(bars):
    """Each image model trained once on the bars (lazily, by name)."""
    return bars_fitter(bars, BASE, IMAGE_SETTINGS)


@pytest.mark.parametrize("name", GAN_MODELS)
def test_learns_the_bars_with_maps(name, fitted, bars):
    assert_learns_the_bars(fitted(name), bars, 0.85)


@pytest.mark.parametrize("name", TABLE_MODELS)
def test_table_variants_learn_the_plane(name):
    train, test, labels = table_toy()
    det = Detector(name, **{**BASE, "epochs": 10, "lr": 1e-3}).fit(train)
    assert det.model_.data_kind == "table"
    assert roc_auc_score(labels, det.decision_function(test)) > 0.85
    with pytest.raises(ConfigError, match="anomaly maps exist for images only"):
        det.anomaly_map(test)


@pytest.mark.parametrize("name", GAN_MODELS)
def test_save_load_gives_identical_scores(name, fitted, bars, tmp_path):
    _, test, _ = bars
    det = fitted(name)
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    np.testing.assert_array_equal(back.decision_function(test), det.decision_function(test))


def test_anogan_search_is_seeded(fitted, bars):
    _, test, _ = bars
    det = fitted("anogan")
    first, second = det.decision_function(test), det.decision_function(test)
    np.testing.assert_array_equal(first, second)
    model = det.model_
    before = torch.get_rng_state()
    with torch.inference_mode():  # as the Detector scores: the search turns gradients back on itself
        scores, maps = model.score_images(torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(before, torch.get_rng_state())  # its starting points come from its own generator
    assert torch.isfinite(scores).all() and maps.shape == (4, 16, 16)
    model.config.search_seed += 1
    try:
        assert not np.array_equal(det.decision_function(test), first)
    finally:
        model.config.search_seed -= 1


def test_anogan_export_is_a_one_line_error(fitted, tmp_path):
    from reconad.export import export_onnx

    with pytest.raises(ConfigError) as err:
        export_onnx(fitted("anogan"), tmp_path / "a.onnx")
    assert "latent space" in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "a.onnx").exists()


# ------------------------------------------------------------------ engine behaviour
def _tiny(name: str, **kw) -> dict:
    """The smallest networks of a model (8 px images, width 4, 8 latent numbers)."""
    extra = {"joint": 16} if name in ("egbad", "alad") else {}
    extra.update({"search_steps": 2} if name == "anogan" else {})
    return {
        "input_shape": [3, 8, 8],
        "width": 4,
        **({} if name == "skip_ganomaly" else {"latent_dim": 8}),
        **extra,
        **kw,
    }


def _train(name: str, epochs: int, checkpoint_dir=None, resume: bool = False, **kw):
    torch.manual_seed(0)
    model = build_model(name, **_tiny(name, **kw))
    return model, fit_tiny(model, tiny_images(), epochs, checkpoint_dir, resume)


@pytest.mark.parametrize("name", ["alad", "fanogan", "ganomaly"])  # the others reuse their parts
def test_two_hundred_steps_at_a_high_learning_rate_stay_finite(name):
    """ALAD: five networks, spectral norm; f-AnoGAN: gradient penalty, two phases; GANomaly:
    discriminator re-initialisation.  AnoGAN, EGBAD and Skip-GANomaly are built from the
    same networks and losses."""
    model, h = _train(name, epochs=20)  # 40 images / batch 4 = 10 steps per epoch
    assert h.global_step == 200
    assert_finite(model, h)


@pytest.mark.parametrize("name", ["fanogan", "alad"])
def test_resume_after_a_kill_equals_an_uninterrupted_run(name, tmp_path, monkeypatch):
    """f-AnoGAN: phases and an n-critic counter; ALAD: dropout, spectral-norm buffers."""
    cls = type(build_model(name, **_tiny(name)))
    assert_resume_equals_uninterrupted(cls, partial(_train, name), tmp_path / "ck", monkeypatch)


def test_fanogan_trains_the_gan_then_the_encoder():
    model, h = _train("fanogan", epochs=5)
    assert len(h.logs["loss_d"]) == 3 and len(h.logs["loss_e"]) == 2  # encoder_share 0.4 of 5 epochs
    assert len(h.logs["loss_g"]) == 3  # every n_critic-th batch of the GAN epochs


@pytest.mark.parametrize(
    ("name", "kw", "parts"),
    [
        ("egbad", {}, {"d_xz", "e", "g"}),
        ("alad", {}, {"d_xz", "d_xx", "d_zz", "e", "g", "ge_xx", "ge_zz"}),
        ("alad", {"use_dzz": False}, {"d_xz", "d_xx", "e", "g", "ge_xx"}),
    ],
)
def test_bigans_log_each_loss_term_and_step_on_their_sums(name, kw, parts):
    """The shared BiGAN step: every term logged as loss_<term>; loss_d and loss_ge are their sums."""
    _, h = _train(name, epochs=1, **kw)
    logged = {k.removeprefix("loss_") for k in h.logs if k.startswith("loss_")}
    assert logged == parts | {"d", "ge"}
    for side, terms in (
        ("d", [p for p in parts if p.startswith("d_")]),
        ("ge", [p for p in parts if not p.startswith("d_")]),
    ):
        total = sum(h.logs[f"loss_{t}"][0] for t in terms)
        assert h.logs[f"loss_{side}"][0] == pytest.approx(total, rel=1e-5)


# -------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_in_one_line():
    train, _, _ = image_toy()
    with pytest.raises(DataError, match="y marks all 160 samples as anomalies"):
        Detector("ganomaly", image_size=16, **BASE).fit(train, y=np.ones(len(train)))
    rows, _, _ = table_toy()
    for name in ("anogan", "fanogan", "skip_ganomaly"):
        with pytest.raises(ConfigError, match="takes images only"):
            Detector(name, **BASE).fit(rows)
    with pytest.raises(ConfigError, match="training"):
        build_model("fanogan", input_shape=[3, 16, 16], training="zzz")
    with pytest.raises(ConfigError, match="betas_d"):
        build_model("ganomaly", input_shape=[3, 16, 16], betas_d=[0.5])


def test_cli_export_of_anogan_is_one_line_exit_2(tiny_mvtec, tmp_path, capsys):
    from reconad.cli import main

    run = tmp_path / "run"
    args = ["train", "--model", "anogan", "--dataset", "mvtec", "--root", str(tiny_mvtec), "--category", "brick"]
    args += ["--out", str(run), "--image-size", "16", "--epochs", "1", "--device", "cpu", "--quiet"]
    args += ["--set", "width=4", "--set", "search_steps=2", "--set", "latent_dim=8"]
    assert main(args) == 0
    capsys.readouterr()
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reconad: error: cannot export anogan") and "\n" not in err


def test_inverse_one_class_protocol_says_which_ran(tmp_path, capsys):
    """``--anomalous-class``: one class anomalous, the rest normal, kept apart from the standard protocol."""
    import json

    from reconad.cli import main

    out = tmp_path / "inv"
    args = ["benchmark", "--protocol", "one-class", "--dataset", "digits", "--model", "ganomaly", "--classes", "0"]
    args += ["--anomalous-class", "--epochs", "1", "--set", "width=4", "--out", str(out), "--quiet"]
    assert main(args) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["anomalous_class"] is True and set(saved["per_class"]) == {"0"}
    assert saved["published"]["rows"] == []  # the standard protocol's figures are not shown beside it
    md = (out / "results.md").read_text()
    assert "Inverse protocol (--anomalous-class)" in md and "inverse: one class anomalous" in md
    assert main(args[:2] + ["one-class", "--dataset", "digits", "--model", "hfr", "--anomalous-class"]) == 2
    assert "standard protocol only" in capsys.readouterr().err
