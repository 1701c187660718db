"""The Detector routes table rows and images; the y policy; model-suggested engine settings."""

import logging

import numpy as np
import pytest

from helpers.recon_toys import image_toy, table_toy
from reconad import Detector
from reconad.data.rows import TabularDataset, is_table
from reconad.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("single_thread")
FAST = {"epochs": 2, "batch_size": 32, "progress": False, "patience": None}


def test_routing_rule():
    assert is_table(np.zeros((5, 3)))
    assert not is_table(np.zeros((5, 8, 8)))
    assert is_table(TabularDataset(np.zeros((5, 3))))


def test_dataframe_rows_and_bad_columns():
    pd = pytest.importorskip("pandas")
    train, test, _ = table_toy()
    df = pd.DataFrame(train, columns=[f"f{i}" for i in range(train.shape[1])])
    det = Detector("ae", **FAST).fit(df)
    assert det.decision_function(pd.DataFrame(test, columns=df.columns)).shape == (len(test),)
    with pytest.raises(DataError, match="matched by name"):  # other names: refused, not taken by position
        det.decision_function(pd.DataFrame(test))
    df["kind"] = "x"
    with pytest.raises(DataError, match="non-numeric"):
        Detector("ae", **FAST).fit(df)


def test_nan_rows_are_refused():
    with pytest.raises(DataError, match="NaN"):
        Detector("ae", **FAST).fit(np.full((20, 3), np.nan))


def test_hfr_refuses_a_table():
    with pytest.raises(ConfigError, match="images only"):
        Detector("hfr", **FAST).fit(np.random.rand(50, 4))


def test_kind_and_shape_mismatches_are_clear():
    train, test, _ = table_toy()
    det = Detector("memae", **FAST).fit(train)
    with pytest.raises(DataError, match="features"):
        det.decision_function(test[:, :5])
    with pytest.raises(ConfigError, match="trained on table rows"):
        det.decision_function(np.zeros((2, 16, 16), dtype=np.uint8))
    with pytest.raises(ConfigError, match="images only"):
        det.anomaly_map(test)


def test_unsupervised_models_keep_labelled_anomalies_out_of_training(caplog):
    train, _, _ = table_toy()
    y = np.zeros(len(train), dtype=int)
    Detector("ae", **FAST).fit(train, y)  # all-normal labels are fine
    y[:3] = 1
    with caplog.at_level(logging.WARNING, logger="reconad"):
        parts = Detector("vae", **FAST)._splits(train, y, None)[:3]
    seen = np.concatenate([np.stack([ds[i].x.numpy() for i in range(len(ds))]) for ds in parts if ds is not None])
    assert len(seen) == len(train) - 3  # training, held-out and calibration parts hold every other row
    assert not any((seen == row).all(axis=1).any() for row in train[:3])
    assert "3 of 300 samples" in caplog.text and "cavga (variant='w')" in caplog.text
    with pytest.raises(DataError, match="labels"):
        Detector("esad", **FAST).fit(train, y[:10])
    with pytest.raises(DataError, match="0 .* and 1"):
        Detector("esad", **FAST).fit(train, np.full(len(train), 2))


def test_models_suggest_engine_settings_and_small_images():
    assert Detector("ae").train_config.batch_size == 128
    assert Detector("ae", batch_size=8).train_config.batch_size == 8
    assert Detector("hfr").train_config.batch_size == 16
    Detector("ae", image_size=16)
    det = Detector("hfr", image_size=28)  # stored as given; checked in fit (scikit-learn's rule)
    with pytest.raises(ConfigError, match="image_size"):
        det.fit(np.zeros((4, 28, 28), dtype=np.uint8))


def test_image_model_refuses_rows_after_training_on_images():
    train, test, _ = image_toy()
    det = Detector("ae", image_size=16, **FAST).fit(train[:40])
    with pytest.raises(ConfigError, match="trained on images"):
        det.decision_function(np.zeros((3, 4)))
