"""The kind of the data (table rows, images, video clips) is decided once per call, by one
adapter (reconad.data.kinds), and an input of no kind is a one-line error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import reconad.detector as detector_module
from helpers.recon_toys import image_toy, table_toy
from reconad import Detector
from reconad.data.kinds import ClipKind, ImageKind, TableKind, kind_of
from reconad.data.rows import TabularDataset
from reconad.data.video import Clip, ClipWindows
from reconad.errors import ConfigError, DataError, DataTypeError

FAST = dict(epochs=1, batch_size=32, progress=False, device="cpu", patience=None)


def _clips() -> ClipWindows:
    frames = np.zeros((10, 8, 8, 3), dtype=np.uint8)
    return ClipWindows([Clip("c", frames, [f"f{i}" for i in range(10)])], length=4, stride=2)


@pytest.mark.parametrize(
    "data, kind",
    [
        (np.zeros((5, 3), dtype=np.float32), TableKind),
        (torch.zeros(5, 3), TableKind),
        (pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}), TableKind),
        ([[1.0, 2.0], [3.0, 4.0]], TableKind),  # a list of rows, as scikit-learn takes X.tolist()
        (TabularDataset(np.zeros((4, 2))), TableKind),
        (np.zeros((2, 8, 8), dtype=np.uint8), ImageKind),
        (np.zeros((2, 8, 8, 3), dtype=np.uint8), ImageKind),
        ("some/folder", ImageKind),
        (["a.png", "b.png"], ImageKind),
        ([np.zeros((8, 8), dtype=np.uint8)], ImageKind),
    ],
)
def test_each_input_gets_its_kind(data, kind):
    assert type(kind_of(data, 8)) is kind


def test_clips_get_the_clip_kind_and_images_their_size():
    assert type(kind_of(_clips())) is ClipKind
    images = kind_of(np.zeros((2, 8, 8), dtype=np.uint8), 16, "pad")
    assert (images.image_size, images.resize_mode) == (16, "pad")  # type: ignore[attr-defined]
    assert images.dataset(np.zeros((2, 8, 8), dtype=np.uint8))[0].image.shape == (3, 16, 16)


@pytest.mark.parametrize("data", [{"a": 1}, 3, None, b"bytes"])
def test_an_input_of_no_kind_is_one_line(data):
    with pytest.raises(DataError, match=rf"cannot use {type(data).__name__} as data: give table rows") as err:
        kind_of(data)
    assert "\n" not in str(err.value)


def test_sparse_input_is_a_type_error_naming_it():
    from scipy import sparse

    with pytest.raises(DataTypeError, match="sparse input .*csr_matrix.* not supported"):
        kind_of(sparse.csr_matrix(np.eye(3)))


def test_the_kind_is_decided_once_per_fit_and_per_scoring_call(monkeypatch):
    calls: list[object] = []
    real = detector_module.kind_of

    def counting(data, *args, **kwargs):
        calls.append(data)
        return real(data, *args, **kwargs)

    monkeypatch.setattr(detector_module, "kind_of", counting)
    for data, score in ((table_toy()[0][:60], table_toy()[1][:9]), (image_toy()[0][:30], image_toy()[1][:5])):
        det = Detector("ae", image_size=16, latent_dim=2, **FAST)
        calls.clear()
        det.fit(data)
        assert sum(c is data for c in calls) == 1  # the held-out scoring is a call of its own
        calls.clear()
        det.decision_function(score)
        assert calls == [score]


def test_model_and_kind_mismatches_keep_their_one_line_messages():
    rows, _, _ = table_toy()
    with pytest.raises(ConfigError, match="model hfr takes images only, got a table"):
        Detector("hfr", **FAST).fit(rows)
    det = Detector("ae", latent_dim=2, **FAST).fit(rows[:40])
    with pytest.raises(ConfigError, match="trained on table rows, got images"):
        det.decision_function(np.zeros((2, 16, 16), dtype=np.uint8))
    with pytest.raises(ConfigError, match="trained on table rows, got video clips"):
        det.decision_function(_clips())
    with pytest.raises(ConfigError, match="val_data holds images, but the training data holds table rows"):
        Detector("ae", latent_dim=2, **FAST).fit(rows[:40], val_data=np.zeros((2, 16, 16), dtype=np.uint8))
    with pytest.raises(ConfigError, match="anomaly maps exist for images only"):
        det.anomaly_map(rows[:3])
