"""Tests for the HFR model: decoder geometry, frozen encoder, bottleneck, training,
per-level normalisation, scoring options and localisation of a pasted defect.

One small model (64x64 images, width 64, bottleneck 32, 5 epochs) is trained once per
module on the tiny texture set and shared by the tests that need a trained model.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import ndimage

from helpers.pasting import paste_square
from reconad.data import MVTecDataset, collate_images, split_holdout
from reconad.data.records import FeatureBatch
from reconad.engine import TrainConfig, Trainer
from reconad.errors import ConfigError
from reconad.models import build_model
from reconad.models.encoder_features import FeatureCache
from reconad.models.hfr import HFR, HFRConfig
from reconad.models.hfr.decoder import HFRDecoder

SIZE = 64
SMALL = dict(width=64, bottleneck=32)

pytestmark = pytest.mark.usefixtures("single_thread")


def _images(ds, n: int | None = None) -> torch.Tensor:
    n = len(ds) if n is None else n
    return collate_images([ds[i] for i in range(n)]).image


@pytest.fixture(scope="module")
def trained(single_thread, tiny_mvtec):
    train_all = MVTecDataset(tiny_mvtec, "brick", "train", SIZE)
    train, val = split_holdout(train_all, 0.25, seed=0)
    torch.manual_seed(0)
    model = HFR(HFRConfig(**SMALL))
    encoder_before = {k: v.clone() for k, v in model.encoder.state_dict().items()}
    config = TrainConfig(epochs=5, batch_size=8, lr=1e-2, patience=None, progress=False, device="cpu")
    history = Trainer(config).fit(model, train, val)
    model.eval()
    return SimpleNamespace(
        model=model,
        history=history,
        train=train,
        val=val,
        test=MVTecDataset(tiny_mvtec, "brick", "test", SIZE),
        encoder_before=encoder_before,
    )


def _with_config(trained, **overrides) -> HFR:
    """A fresh HFR with other (non-architectural) settings and the trained weights."""
    model = HFR(HFRConfig(**SMALL, **overrides))
    model.load_trainable_state_dict(trained.model.trainable_state_dict())
    return model.eval()


# ----------------------------------------------------------------------- decoder


@pytest.mark.parametrize("size", [(64, 64), (72, 88)])
def test_decoder_output_matches_every_level_shape(size):
    channels, strides = [64, 128, 256], [4, 8, 16]
    dec = HFRDecoder(channels, strides, width=32, bottleneck=8).eval()
    h, w = size
    feats = [torch.randn(2, c, -(-h // s), -(-w // s)) for c, s in zip(channels, strides)]
    with torch.no_grad():
        out = dec(feats)
    assert len(out) == len(feats)
    for f, r in zip(feats, out):
        assert r.shape == f.shape


def test_model_reconstructs_encoder_levels_with_their_shapes():
    model = HFR(HFRConfig(**SMALL)).eval()
    x = torch.rand(2, 3, SIZE, 96)
    feats = model.extract(x)
    assert [f.shape[1] for f in feats] == model.encoder.channels == [24, 40, 112]
    recon = model.decode(feats)
    for f, r, s in zip(feats, recon, model.encoder.strides):
        assert r.shape == f.shape == (2, f.shape[1], -(-SIZE // s), -(-96 // s))


def test_decoder_checks_its_arguments():
    with pytest.raises(ValueError):
        HFRDecoder([8, 16], [4, 8, 16])


# ------------------------------------------------------------- frozen encoder


def test_only_the_decoder_gets_gradients():
    torch.manual_seed(0)
    model = HFR(HFRConfig(**SMALL))
    model.train()
    assert not model.encoder.training  # the frozen encoder stays in eval mode
    feats = model.extract(torch.rand(2, 3, SIZE, SIZE))
    assert all(not f.requires_grad for f in feats)
    loss = model.training_loss(FeatureBatch(feats))
    assert loss.requires_grad
    loss.backward()
    enc = list(model.encoder.parameters())
    assert enc and all(not p.requires_grad and p.grad is None for p in enc)
    dec = list(model.decoder.named_parameters())
    assert dec and all(p.grad is not None for _, p in dec), [n for n, p in dec if p.grad is None]
    assert sum(float(p.grad.abs().sum()) for _, p in dec) > 0
    # The optimiser holds exactly the decoder's parameters.
    from reconad.engine.step import build_optimizer

    opt = build_optimizer(model.optimizer_specs()["main"], TrainConfig(progress=False))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert in_opt == {id(p) for p in model.decoder.parameters()}


def test_training_leaves_encoder_unchanged_and_saves_no_encoder_weights(trained):
    after = trained.model.encoder.state_dict()
    assert after.keys() == trained.encoder_before.keys()
    for k, v in trained.encoder_before.items():
        assert torch.equal(v, after[k]), k
    keys = trained.model.trainable_state_dict().keys()
    assert keys and not any(k.startswith("encoder.") for k in keys)
    assert {"level_mean", "level_std"} <= set(keys)


# ----------------------------------------------------------------- bottleneck


@pytest.mark.parametrize("config", [{}, SMALL], ids=["default", "small"])
def test_bottleneck_holds_fewer_values_than_the_features(config):
    model = HFR(HFRConfig(**config)).eval()
    feats = model.extract(torch.rand(1, 3, SIZE, SIZE))
    with torch.no_grad():
        z = model.decoder.encode(feats)
    deepest = max(range(len(feats)), key=lambda i: model.encoder.strides[i])
    assert z.shape[-2:] == feats[deepest].shape[-2:]
    assert z.shape[1] == model.config.bottleneck < feats[deepest].shape[1]
    # Fewer values than any single level, let alone all of them together.
    assert z.numel() < min(f.numel() for f in feats)
    assert z.numel() < sum(f.numel() for f in feats) / 8


def test_reconstruction_depends_on_the_input_only_through_the_bottleneck(monkeypatch):
    """No skip path: with the bottleneck held fixed, other input features give the same output."""
    torch.manual_seed(0)
    dec = HFRDecoder([24, 40, 112], [4, 8, 16], width=32, bottleneck=8).eval()
    feats_a = [torch.randn(2, c, 64 // s, 64 // s) for c, s in zip([24, 40, 112], [4, 8, 16])]
    feats_b = [torch.randn_like(f) * 3 + 1 for f in feats_a]
    with torch.no_grad():
        z = dec.encode(feats_a)
        out_a = dec(feats_a)
        assert not torch.allclose(dec(feats_b)[0], out_a[0])  # the input does matter...
        monkeypatch.setattr(dec, "encode", lambda feats: z)
        out_b = dec(feats_b)  # ...but only through the bottleneck
    for a, b in zip(out_a, out_b):
        assert torch.equal(a, b)


# ------------------------------------------------------------------- training


def test_training_reduces_the_loss(trained):
    h = trained.history
    assert h.epochs_run == 5 and len(h.train_loss) == 5 and len(h.val_loss) == 5
    assert h.train_loss[-1] < 0.75 * h.train_loss[0]
    assert h.val_loss[-1] < 0.8 * h.val_loss[0]
    assert all(np.isfinite(h.train_loss + h.val_loss))


def test_feature_noise_only_in_training_mode():
    model = HFR(HFRConfig(**SMALL, feature_noise=0.5))
    feats = [torch.randn(2, 4, 8, 8)]
    model.eval()
    assert model._noisy(feats)[0] is feats[0]
    model.train()
    assert not torch.allclose(model._noisy(feats)[0], feats[0])


# --------------------------------------------------------------------- forward


@pytest.mark.parametrize("shape", [(3, 3, SIZE, SIZE), (2, 3, SIZE, 96)])
def test_forward_returns_scores_and_maps_at_input_resolution(trained, shape):
    x = torch.rand(*shape)
    with torch.no_grad():
        scores, maps = trained.model.score_images(x)
    assert scores.shape == (shape[0],)
    assert maps.shape == (shape[0], shape[2], shape[3])
    assert scores.dtype == maps.dtype == torch.float32
    assert torch.isfinite(scores).all() and torch.isfinite(maps).all()
    # Images are scored independently of the rest of the batch.
    with torch.no_grad():
        s0, m0 = trained.model.score_images(x[:1])
    assert torch.allclose(s0, scores[:1], atol=1e-4)
    assert torch.allclose(m0, maps[:1], atol=1e-4)


# --------------------------------------------------------------- normalisation


def test_level_normalisation_fitted_on_held_out_normals(trained):
    model = trained.model
    k = len(model.encoder.channels)
    assert not torch.equal(model.level_mean, torch.zeros(k))
    assert not torch.equal(model.level_std, torch.ones(k))
    assert (model.level_std > 0).all()
    x = _images(trained.val)
    with torch.no_grad():
        feats = model.extract(x)
        res = model.level_residuals(feats, model.decode(feats))
        fused, _ = model.fused_map(feats)
    for i, r in enumerate(res):
        assert float(r.mean()) == pytest.approx(float(model.level_mean[i]), rel=1e-3)
        assert float(r.std(unbiased=False)) == pytest.approx(float(model.level_std[i]), rel=1e-3)
        z = (r - model.level_mean[i]) / model.level_std[i]
        assert abs(float(z.mean())) < 1e-3 and float(z.std(unbiased=False)) == pytest.approx(1.0, abs=1e-2)
    # The fused (upsampled, weighted, smoothed) map of normal data is roughly zero-mean.
    assert abs(float(fused.mean())) < 0.15
    # Fresh, unfitted model: identity normalisation.
    fresh = HFR(HFRConfig(**SMALL))
    assert torch.equal(fresh.level_mean, torch.zeros(k)) and torch.equal(fresh.level_std, torch.ones(k))


def test_on_fit_end_uses_held_out_data_not_training_data(trained):
    model = _with_config(trained)
    device = torch.device("cpu")
    train_feats = model.prepare_data(trained.train, device, progress=False)
    val_feats = model.prepare_data(trained.val, device, progress=False)
    assert isinstance(val_feats, FeatureCache) and len(val_feats) == len(trained.val)
    model.on_fit_end(train_feats, val_feats, device)
    assert torch.allclose(model.level_mean, trained.model.level_mean, rtol=1e-5)
    model.on_fit_end(train_feats, None, device)  # no held-out data: falls back to training data
    assert not torch.allclose(model.level_mean, trained.model.level_mean, rtol=1e-3)


# ---------------------------------------------------------------- localisation


def test_pasted_defect_scores_higher_and_is_localised(trained):
    x = _images(trained.val)
    bad, mask = paste_square(x)
    with torch.no_grad():
        s_norm, _ = trained.model.score_images(x)
        s_bad, m_bad = trained.model.score_images(bad)
    assert (s_bad > s_norm).all(), (s_bad, s_norm)
    assert float(s_bad.min()) > float(s_norm.max())
    inside = m_bad[:, mask].mean(dim=1)
    outside = m_bad[:, ~mask].mean(dim=1)
    assert (inside > outside + 1.0).all(), (inside, outside)
    near = torch.from_numpy(ndimage.binary_dilation(mask.numpy(), iterations=4))
    for m in m_bad:
        peak = int(m.flatten().argmax())
        assert near.flatten()[peak], "the map peaks outside the defect"


# -------------------------------------------------------------------- options


@pytest.mark.parametrize("score", ["max", "topk", "mean", "deep-mean"])
def test_score_options(trained, score):
    model = _with_config(trained, score=score, topk_ratio=0.05)
    x = _images(trained.val)
    bad, _ = paste_square(x)
    with torch.no_grad():
        s, m = model.score_images(torch.cat([x, bad]))
        _, m_ref = trained.model.score_images(torch.cat([x, bad]))
        fused, res = model.fused_map(model.extract(torch.cat([x, bad])))
    n = len(x)
    assert s.shape == (2 * n,) and torch.isfinite(s).all()
    assert torch.allclose(m, m_ref, atol=1e-5)  # the score option never changes the map
    flat = fused.flatten(1)
    if score == "max":
        expected = flat.amax(1)
    elif score == "mean":
        expected = flat.mean(1)
    elif score == "topk":
        k = round(0.05 * flat.shape[1])
        expected = flat.sort(dim=1, descending=True).values[:, :k].mean(1)
    else:
        deep = max(range(len(res)), key=lambda i: model.encoder.strides[i])
        expected = ((res[deep] - model.level_mean[deep]) / model.level_std[deep]).flatten(1).mean(1)
    assert torch.allclose(s, expected, atol=1e-5)
    if score != "deep-mean":
        assert float(s[n:].mean()) > float(s[:n].mean())  # fused-map scores see the defect


def test_score_ordering_max_topk_mean(trained):
    x = _images(trained.val)
    with torch.no_grad():
        s = {
            mode: _with_config(trained, score=mode, topk_ratio=0.1).score_images(x).scores
            for mode in ("max", "topk", "mean")
        }
        s_all = _with_config(trained, score="topk", topk_ratio=1.0).score_images(x).scores
    assert (s["max"] >= s["topk"] - 1e-6).all() and (s["topk"] >= s["mean"] - 1e-6).all()
    assert torch.allclose(s_all, s["mean"], atol=1e-5)


@pytest.mark.parametrize("blur_sigma", [0.0, 100.0])
def test_no_blur_and_a_blur_wider_than_the_map(trained, blur_sigma):
    model = _with_config(trained, blur_sigma=blur_sigma, score="max")
    x = _images(trained.val, 2)
    with torch.no_grad():
        s, m = model.score_images(x)
        fused, _ = model.fused_map(model.extract(x))
        default, _ = trained.model.fused_map(trained.model.extract(x))  # blur_sigma 4
    assert s.shape == (2,) and m.shape == (2, SIZE, SIZE) and torch.isfinite(m).all()
    if blur_sigma == 0:
        assert torch.allclose(s, fused.flatten(1).amax(1))
        assert float(fused.std()) > float(default.std())  # unsmoothed: more spread
    else:  # smoothed almost flat: the map's spread shrinks
        assert float(fused.std()) < 0.5 * float(default.std())


@pytest.mark.parametrize("residual", ["l2", "cosine+l2"])
def test_residual_options_run(trained, residual):
    model = HFR(HFRConfig(**SMALL, residual=residual)).eval()
    with torch.no_grad():
        s, m = model.score_images(torch.rand(2, 3, SIZE, SIZE))
    assert s.shape == (2,) and m.shape == (2, SIZE, SIZE) and torch.isfinite(m).all()


@pytest.mark.parametrize(
    "bad",
    [
        {"score": "median"},
        {"score": "MAX"},
        {"residual": "l1"},
        {"topk_ratio": 0.0},
        {"topk_ratio": 1.5},
        {"width": 4},
        {"bottleneck": 0},
        {"feature_noise": -0.1},
        {"blur_sigma": -1.0},
        {"width": "abc"},
        {"width": 64.0},
        {"topk_ratio": "abc"},
        {"blur_sigma": None},
        {"level_weights": "abc"},
        {"layers": ["x"]},
    ],
)
def test_bad_option_values_raise_config_error(bad):
    with pytest.raises(ConfigError):
        HFRConfig(**bad)
    with pytest.raises(ConfigError):
        build_model("hfr", **bad)


@pytest.mark.parametrize("bad", [{"backbone": "vgg16"}, {"layers": [3, 2]}, {"layers": [0, 1]}])
def test_bad_encoder_options_raise_config_error(bad):
    with pytest.raises(ConfigError):
        HFR(HFRConfig(**bad))


def test_unknown_option_name_is_refused():
    with pytest.raises(TypeError):
        HFRConfig(scroe="max")


def test_position_normalisation_is_fitted_per_pixel_and_saved(trained, tmp_path):
    from reconad.serialization import read_model_dir, write_model_dir

    model = _with_config(trained, normalization="position")
    device = torch.device("cpu")
    val_feats = model.prepare_data(trained.val, device, progress=False)
    model.on_fit_end(model.prepare_data(trained.train, device, progress=False), val_feats, device)
    x = _images(trained.val)
    with torch.no_grad():
        feats = model.extract(x)
        res = model.level_residuals(feats, model.decode(feats))
    for i, r in enumerate(res):
        mean, std = model._buffers[f"pos_mean_{i}"], model._buffers[f"pos_std_{i}"]
        assert mean.shape == r.shape[-2:] and std.shape == r.shape[-2:]
        assert float(std.min()) >= 0.1 * float(model.level_std[i]) - 1e-6
        # Position statistics differ from the single level statistic somewhere.
        assert float((mean - model.level_mean[i]).abs().max()) > 0
    write_model_dir(tmp_path / "m", model.trainable_state_dict(), {"note": "test"})
    state, _ = read_model_dir(tmp_path / "m")
    loaded = HFR(HFRConfig(**SMALL, normalization="position"))
    loaded.load_trainable_state_dict(state)
    loaded.eval()
    with torch.no_grad():
        assert torch.allclose(loaded.score_images(x).maps, model.score_images(x).maps, atol=1e-5)


def test_default_level_weights_double_per_level_and_bad_weights_are_refused():
    assert HFR(HFRConfig(**SMALL)).level_weights.tolist() == [1.0, 2.0, 4.0]
    assert HFR(HFRConfig(**SMALL, layers=[3, 5])).level_weights.tolist() == [1.0, 2.0]
    with pytest.raises(ConfigError):
        HFR(HFRConfig(**SMALL, level_weights=[1.0, 1.0]))
    with pytest.raises(ConfigError):
        HFRConfig(level_weights=[0.0, 0.0, 0.0])
