"""HFR's denoising objective (``denoise="synthetic"``): the decoder sees corrupted features,
its target stays clean; training only, scoring unchanged."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reconad import Detector
from reconad.data import MVTecDataset
from reconad.engine import TrainConfig, Trainer
from reconad.errors import ConfigError
from reconad.models import build_model
from reconad.models.encoder_features import FeatureCache, encode_dataset
from reconad.models.hfr import HFR, HFRConfig
from reconad.models.hfr.denoise import CorruptedCopies, DenoiseBatch, DenoiseCache, collate_denoise

SIZE = 64
SMALL = dict(width=32, bottleneck=16)
FAST = dict(image_size=SIZE, epochs=2, batch_size=8, lr=1e-2, device="cpu", progress=False, patience=None, **SMALL)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(
    "bad, phrase",
    [
        ({"denoise": "perlin"}, "unknown denoise 'perlin'"),
        ({"denoise_copies": 0}, "denoise_copies"),
        ({"denoise_prob": 0.0}, "denoise_prob"),
        ({"denoise_prob": 1.5}, "denoise_prob"),
        ({"denoise_weight": -1.0}, "denoise_weight"),
        ({"denoise_copies": 1.5}, "denoise_copies"),
    ],
)
def test_bad_denoise_options_are_one_line_config_errors(bad, phrase):
    with pytest.raises(ConfigError, match=phrase) as info:
        HFRConfig(**bad)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        build_model("hfr", **bad)


def _bump(levels: list[torch.Tensor], where: tuple[int, int], size: int = 3) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Features with a strong shift (3 channel stds along a fixed random direction) in a
    square of the first level's grid and the matching cells of the others, and that
    square as a (N, h, w) mask."""
    h0 = levels[0].shape[-1]
    y, x = where
    out, g = [], torch.Generator().manual_seed(0)
    for lv in levels:
        s = h0 // lv.shape[-1]
        f = lv.clone()
        ys, xs = slice(y // s, max(y // s + 1, (y + size) // s)), slice(x // s, max(x // s + 1, (x + size) // s))
        shift = 3.0 * lv.std(dim=(0, 2, 3)) * torch.randn(lv.shape[1], generator=g)
        f[:, :, ys, xs] += shift[None, :, None, None]
        out.append(f)
    mask = torch.zeros(levels[0].shape[0], h0, h0)
    mask[:, y : y + size, x : x + size] = 1.0
    return out, mask


def _train(model: HFR, data: FeatureCache) -> HFR:
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=80, batch_size=8, lr=1e-2, patience=None, progress=False, device="cpu")
    Trainer(cfg).fit(model, data)
    return model.eval()


def test_denoising_teaches_the_decoder_to_output_the_normal_content(tiny_mvtec):
    """Same seed, same clean features: the decoder trained on corrupted inputs (a defect at
    a fixed place in feature space, the clean features as target) outputs features much
    closer to the clean ones inside that defect than the decoder trained on clean inputs."""
    train = MVTecDataset(tiny_mvtec, "brick", "train", SIZE)
    plain = HFR(HFRConfig(**SMALL))
    clean = encode_dataset(plain.encoder, train, torch.device("cpu"), progress=False)
    corrupted, defect = _bump(clean, (2, 2))
    denoised = HFR(HFRConfig(**SMALL, denoise="synthetic", denoise_prob=1.0, denoise_copies=1))
    _train(plain, FeatureCache(clean))
    _train(denoised, DenoiseCache(FeatureCache(clean), corrupted, defect, copies=1, prob=1.0))
    inside = defect > 0.5  # on the first level's grid
    with torch.no_grad():
        to_clean = {
            name: float(model.level_residuals(clean, model.decode(corrupted))[0][inside].mean())
            for name, model in (("plain", plain), ("denoised", denoised))
        }
    assert to_clean["denoised"] < 0.75 * to_clean["plain"], to_clean


def test_corrupted_copies_are_seeded_and_items_draw_them_only_in_the_cache(tiny_mvtec):
    train = MVTecDataset(tiny_mvtec, "brick", "train", SIZE)
    a, b = CorruptedCopies(train, 2, seed=3), CorruptedCopies(train, 2, seed=3)
    assert len(a) == 2 * len(train)
    torch.testing.assert_close(a[5].image, b[5].image)
    assert float(a[5].mask.sum()) >= 1 and not torch.equal(a[5].image, a[5 + len(train)].image)
    model = HFR(HFRConfig(**SMALL, denoise="synthetic", denoise_copies=2, denoise_prob=1.0))
    cache = model.prepare_data(train, torch.device("cpu"), progress=False)
    assert isinstance(cache, DenoiseCache) and len(cache) == len(train)
    batch = collate_denoise([cache[i] for i in range(4)])
    assert isinstance(batch, DenoiseBatch) and batch.inputs is not None and batch.defect is not None
    assert float(batch.defect.flatten(1).sum(1).min()) > 0  # prob 1: every item drew a corrupted copy
    torch.testing.assert_close(batch.levels[0], torch.stack([cache.levels[0][i] for i in range(4)]))
    model.train()
    assert not torch.equal(model._decoder_input(batch)[0], batch.levels[0])
    model.eval()  # held-out losses and scoring see the clean features
    assert torch.equal(model._decoder_input(batch)[0], batch.levels[0])
    assert cache.normal().levels is cache.levels  # the normalisation and banks use clean features


def test_denoise_is_training_only_scoring_and_save_load_unchanged(tiny_mvtec, tmp_path):
    train = MVTecDataset(tiny_mvtec, "brick", "train", SIZE)
    det = Detector("hfr", denoise="synthetic", **FAST).fit(train)
    x = torch.stack([train[i].image for i in range(4)])
    scores = det.decision_function(x)
    det.save(tmp_path / "m")
    back = Detector.load(tmp_path / "m")
    assert back.model_config["denoise"] == "synthetic"
    np.testing.assert_allclose(back.decision_function(x), scores, rtol=1e-5)
    plain = HFR(HFRConfig(**SMALL))  # same decoder weights, no denoising: the same scores
    plain.load_trainable_state_dict(det.model_.trainable_state_dict())
    with torch.no_grad():
        np.testing.assert_allclose(plain.eval().score_images(x).scores.numpy(), scores, rtol=1e-5)


def test_denoise_refuses_features_computed_beforehand(tiny_mvtec):
    """Without the images there are no corrupted copies: an error, not a silent plain HFR."""
    train = MVTecDataset(tiny_mvtec, "brick", "train", SIZE)
    model = HFR(HFRConfig(**SMALL, denoise="synthetic"))
    feats = FeatureCache(encode_dataset(model.encoder, train, torch.device("cpu"), progress=False))
    with pytest.raises(ConfigError, match="denoise='synthetic' needs the training images"):
        model.prepare_data(feats, torch.device("cpu"), progress=False)
    assert HFR(HFRConfig(**SMALL)).prepare_data(feats, torch.device("cpu")) is feats
