"""Tests for the Detector facade: inputs it fits on, outputs, the threshold, option
checks, and model files (round trip, tampered, foreign and malicious files).

One small detector (64x64, width 64, bottleneck 32, 2 epochs) is fitted once per module
on the tiny texture set; two more fits check that a folder and an array give the same
model as a Dataset.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from reconad import Detector
from reconad.data import MVTecDataset, list_images, split_holdout
from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.serialization import sha256_of

SIZE = 64
QUANTILE = 0.75
CONFIG = dict(
    image_size=SIZE,
    epochs=2,
    batch_size=8,
    lr=1e-2,
    width=64,
    bottleneck=32,
    device="cpu",
    progress=False,
    patience=None,
    val_fraction=0.25,
    threshold_quantile=QUANTILE,
    calibration="holdout",  # these tests check the held-out split's mechanics
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def train_ds(tiny_mvtec):
    return MVTecDataset(tiny_mvtec, "brick", "train", SIZE)


@pytest.fixture(scope="module")
def test_ds(tiny_mvtec):
    return MVTecDataset(tiny_mvtec, "brick", "test", SIZE)


@pytest.fixture(scope="module")
def det(single_thread, train_ds):
    return Detector("hfr", **CONFIG).fit(train_ds)


def _read_uint8(paths) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths])


# ------------------------------------------------------------------- fitting


def test_fit_on_dataset(det, train_ds):
    assert det.model_ is not None and repr(det) == "Detector('hfr', fitted)"
    assert det.history_.epochs_run == 2 and len(det.history_.val_loss) == 2
    n_val = round(0.25 * len(train_ds))
    assert det.val_scores_.shape == (n_val,)
    assert det.model_.config.width == 64 and det.train_config.epochs == 2 and det.settings["image_size"] == SIZE


def test_fit_on_a_folder_gives_the_same_model(det, tiny_mvtec):
    folder = tiny_mvtec / "brick" / "train" / "good"
    other = Detector("hfr", **CONFIG).fit(str(folder), y=np.zeros(16))  # all-normal y is fine
    np.testing.assert_allclose(other.val_scores_, det.val_scores_, rtol=1e-5, atol=1e-6)
    assert other.threshold_ == pytest.approx(det.threshold_, rel=1e-5)
    assert other.history_.train_loss == pytest.approx(det.history_.train_loss, rel=1e-5)


def test_fit_on_a_uint8_array_with_val_data_gives_the_same_model(det, train_ds, tiny_mvtec):
    images = _read_uint8(list_images(tiny_mvtec / "brick" / "train" / "good"))
    assert images.dtype == np.uint8 and images.shape == (16, SIZE, SIZE, 3)
    train_part, val_part = split_holdout(train_ds, 0.25, seed=0)
    other = Detector("hfr", **CONFIG).fit(images[train_part.indices], val_data=images[val_part.indices])
    np.testing.assert_allclose(other.val_scores_, det.val_scores_, rtol=1e-4, atol=1e-5)
    assert other.threshold_ == pytest.approx(det.threshold_, rel=1e-4)


def test_fit_without_held_out_data_warns(train_ds):
    images = _read_uint8([train_ds.records[i].path for i in range(4)])
    cfg = dict(CONFIG, epochs=1, val_fraction=0.0)
    with pytest.warns(UserWarning, match="held-out"):
        d = Detector("hfr", **cfg).fit(images)
    assert d.val_scores_.shape == (4,)  # the threshold comes from the training images


# ------------------------------------------------------------------- outputs


def test_outputs_shapes_and_dtypes(det, test_ds):
    n = len(test_ds)
    scores = det.decision_function(test_ds)
    maps = det.anomaly_map(test_ds)
    flags = det.predict(test_ds)
    assert scores.shape == (n,) and scores.dtype == np.float32 and np.isfinite(scores).all()
    assert maps.shape == (n, SIZE, SIZE) and maps.dtype == np.float32 and np.isfinite(maps).all()
    assert flags.shape == (n,) and np.issubdtype(flags.dtype, np.integer) and set(flags) <= {0, 1}
    np.testing.assert_array_equal(flags, (scores > det.threshold_).astype(int))
    s2, m2 = det.score_and_map(test_ds)
    np.testing.assert_allclose(s2, scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m2, maps, rtol=1e-5, atol=1e-6)
    # The default score (mean of the top 1 % of the fused map) follows the map's hot spots.
    top = np.sort(maps.reshape(n, -1), axis=1)[:, -max(1, maps[0].size // 100) :].mean(axis=1)
    assert np.corrcoef(top, scores)[0, 1] > 0.9


def test_accepts_paths_folders_arrays_and_tensors(det, test_ds, tiny_mvtec):
    paths = test_ds.paths
    ref = det.decision_function(test_ds)
    np.testing.assert_allclose(det.decision_function(paths), ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(det.decision_function([Path(p) for p in paths]), ref, rtol=1e-5, atol=1e-6)
    good = tiny_mvtec / "brick" / "test" / "good"
    np.testing.assert_allclose(det.decision_function(good), ref[:4], rtol=1e-5, atol=1e-6)
    arr = _read_uint8(paths)
    np.testing.assert_allclose(det.decision_function(arr), ref, rtol=1e-4, atol=1e-4)
    chw = torch.from_numpy(arr).permute(0, 3, 1, 2).float() / 255
    np.testing.assert_allclose(det.decision_function(chw), ref, rtol=1e-4, atol=1e-4)
    big = np.repeat(np.repeat(arr, 2, axis=1), 2, axis=2)  # 128x128: resized to image_size
    assert det.anomaly_map(big).shape == (len(arr), SIZE, SIZE)


def test_bad_inputs_to_score(det, tmp_path):
    with pytest.raises(DataError):
        det.decision_function(np.zeros((0, SIZE, SIZE, 3), dtype=np.uint8))
    with pytest.raises(DataError):
        det.decision_function(tmp_path / "missing.png")
    with pytest.raises(DataError):
        det.decision_function({"not": "images"})


# ----------------------------------------------------------------- threshold


def test_threshold_is_a_quantile_of_held_out_normal_scores(det, train_ds):
    _, val = split_holdout(train_ds, CONFIG["val_fraction"], seed=0)
    held_out = det.decision_function(val)
    np.testing.assert_allclose(det.val_scores_, held_out, rtol=1e-5, atol=1e-6)
    assert det.threshold_ == pytest.approx(float(np.quantile(det.val_scores_, QUANTILE)), rel=1e-6)
    # 4 held-out normals, q = 0.75: exactly (1 - q) * 4 = 1 of them is flagged.
    assert int(det.predict(val).sum()) == round((1 - QUANTILE) * len(val))


# ------------------------------------------------------------------- options


def test_unknown_option_and_model_are_refused():
    with pytest.raises(ConfigError, match="epoch"):
        Detector("hfr", epoch=3).check_params()
    with pytest.raises(ConfigError):
        Detector("hfr", image_size=SIZE, colour="red").check_params()
    with pytest.raises(ConfigError, match="unknown model"):
        Detector("nosuchmodel").check_params()


@pytest.mark.parametrize(
    "bad",
    [
        {"image_size": 16},
        {"val_fraction": 1.0},
        {"val_fraction": -0.1},
        {"threshold_quantile": 0.0},
        {"threshold_quantile": 1.5},
        {"epochs": 0},
        {"optimizer": "lbfgs"},
        {"device": "tpu9"},
        {"epochs": "abc"},
        {"epochs": 2.5},
        {"lr": "fast"},
        {"batch_size": None},
        {"patience": "x"},
    ],
)
def test_bad_setting_values_are_refused(bad):
    with pytest.raises(ConfigError):
        Detector("hfr", **dict(CONFIG, **bad)).check_params()


def test_bad_model_option_value_is_refused_at_fit():
    with pytest.raises(ConfigError):
        Detector("hfr", **dict(CONFIG, score="median")).fit(np.zeros((4, SIZE, SIZE, 3), dtype=np.uint8))


def test_y_with_anomalies_is_kept_out_of_a_model_of_normal_data(caplog):
    x = np.zeros((4, SIZE, SIZE, 3), dtype=np.uint8)
    with caplog.at_level(logging.WARNING, logger="reconad"):
        Detector("patchcore", image_size=SIZE, device="cpu", progress=False).fit(x, y=[0, 1, 0, 0])
    assert "the 1 of 4 samples y marks as anomalies are kept out of training" in caplog.text
    with pytest.raises(DataError, match="y marks all 4 samples as anomalies"):
        Detector("patchcore", image_size=SIZE, device="cpu", progress=False).fit(x, y=[1, 1, 1, 1])


def test_empty_training_data_is_refused():
    with pytest.raises(DataError):
        Detector("hfr", **CONFIG).fit(np.zeros((0, SIZE, SIZE, 3), dtype=np.uint8))


def test_use_before_fit_is_refused(tmp_path):
    d = Detector("hfr", **CONFIG)
    assert repr(d) == "Detector('hfr', not fitted)"
    from sklearn.exceptions import NotFittedError

    from reconad.errors import ReconadError

    x = np.zeros((1, SIZE, SIZE, 3), dtype=np.uint8)
    for call in (d.predict, d.decision_function, d.anomaly_map, d.score_samples, d.p_values):
        with pytest.raises(NotFittedError, match=rf"before {call.__name__}\(\)"):
            call(x)
    with pytest.raises(ReconadError, match=r"not fitted yet: call fit\(\) or Detector.load\(\) before save\(\)"):
        d.save(tmp_path / "m")


# --------------------------------------------------------------- persistence


@pytest.fixture()
def saved(det, tmp_path) -> Path:
    return det.save(tmp_path / "model")


def _resign(directory: Path) -> None:
    """Write the current sha256 of model.safetensors into config.json."""
    cfg = json.loads((directory / "config.json").read_text())
    cfg["weights_sha256"] = sha256_of(directory / "model.safetensors")
    (directory / "config.json").write_text(json.dumps(cfg))


def test_save_load_round_trip_gives_identical_results(det, saved, test_ds):
    assert sorted(p.name for p in saved.iterdir()) == ["config.json", "model.safetensors"]
    cfg = json.loads((saved / "config.json").read_text())
    assert cfg["format"] == "reconad-model" and cfg["model"] == "hfr"
    loaded = Detector.load(saved)
    assert loaded.threshold_ == det.threshold_
    np.testing.assert_array_equal(loaded.val_scores_, det.val_scores_)
    assert loaded.model_.config.to_dict() == det.model_.config.to_dict()
    assert loaded.settings == det.settings
    assert loaded.history_.train_loss == det.history_.train_loss
    s1, m1 = det.score_and_map(test_ds)
    s2, m2 = loaded.score_and_map(test_ds)
    np.testing.assert_array_equal(s2, s1)
    np.testing.assert_array_equal(m2, m1)
    np.testing.assert_array_equal(loaded.predict(test_ds), det.predict(test_ds))
    assert loaded.get_config() == det.get_config()


def test_saved_file_holds_no_encoder_weights(det, saved):
    size = (saved / "model.safetensors").stat().st_size
    encoder_bytes = sum(p.numel() * p.element_size() for p in det.model_.encoder.parameters())
    assert size < encoder_bytes


@pytest.mark.parametrize("where", ["header", "data"])
def test_one_modified_byte_is_refused(saved, where):
    weights = saved / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    i = 20 if where == "header" else len(raw) - 3
    raw[i] ^= 0x01
    weights.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="checksum"):
        Detector.load(saved)


def test_missing_or_incomplete_directory_is_refused(saved, tmp_path):
    with pytest.raises(ModelFileError):
        Detector.load(tmp_path / "nowhere")
    (saved / "config.json").unlink()
    with pytest.raises(ModelFileError):
        Detector.load(saved)


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.pop("format"),
        lambda c: c.update(format="someone-else"),
        lambda c: c.update(format_version=99),
        lambda c: c.update(format_version="one"),
        lambda c: c.update(format_version=None),
        lambda c: c.pop("model"),
        lambda c: c.update(model_config=[1, 2]),
    ],
    ids=["no-format", "other-format", "newer-version", "text-version", "null-version", "no-model", "bad-model-config"],
)
def test_foreign_or_broken_config_is_refused(saved, edit):
    cfg = json.loads((saved / "config.json").read_text())
    edit(cfg)
    (saved / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFileError):
        Detector.load(saved)


@pytest.mark.parametrize("content", [b"", b"not json at all {", b"\xff\xfe\x00garbage", b"[1, 2, 3]"])
def test_config_that_is_not_a_reconad_json_is_refused(saved, content):
    (saved / "config.json").write_bytes(content)
    with pytest.raises(ModelFileError):
        Detector.load(saved)


def test_random_bytes_with_a_matching_checksum_are_refused(saved):
    (saved / "model.safetensors").write_bytes(np.random.default_rng(0).bytes(4096))
    _resign(saved)
    with pytest.raises(ModelFileError, match="safetensors"):
        Detector.load(saved)


@pytest.mark.parametrize("which", ["other-tensors", "other-shapes"])
def test_valid_safetensors_of_another_model_are_refused(saved, det, which):
    if which == "other-tensors":
        state = {"weight": torch.zeros(3, 3)}
    else:  # same names, a different decoder width
        state = {
            k: torch.zeros(*(2 * s for s in v.shape)) if v.ndim else v
            for k, v in det.model_.trainable_state_dict().items()
        }
    save_file(state, str(saved / "model.safetensors"))
    _resign(saved)
    with pytest.raises(ModelFileError, match="does not match"):
        Detector.load(saved)


class _Payload:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').close()",))


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_pickle_in_place_of_the_weights_is_never_executed(saved, tmp_path, writer):
    marker = tmp_path / "pwned"
    weights = saved / "model.safetensors"
    if writer == "pickle":
        weights.write_bytes(pickle.dumps(_Payload(marker)))
    else:
        torch.save({"decoder.weight": _Payload(marker)}, weights)
    _resign(saved)  # the checksum passes: only the format check stands in the way
    with pytest.raises(ModelFileError):
        Detector.load(saved)
    assert not marker.exists()
    # The payload is live: loading it the unsafe way would have run it.
    if writer == "pickle":
        pickle.loads(weights.read_bytes())
    else:  # (this torch reads a *.safetensors name as safetensors: use another name)
        copy = tmp_path / "weights.pt"
        copy.write_bytes(weights.read_bytes())
        torch.load(copy, weights_only=False)
    assert marker.exists()
    os.remove(marker)
