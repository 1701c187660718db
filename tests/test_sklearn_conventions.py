"""The Detector follows scikit-learn's estimator conventions, checked with scikit-learn itself."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import make_scorer, roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.utils.validation import check_is_fitted

from helpers.recon_toys import table_toy
from reconad import Detector
from reconad.errors import ConfigError

FAST = dict(epochs=3, batch_size=32, progress=False, device="cpu", patience=None, latent_dim=2, hidden=[8])


@pytest.fixture(scope="module")
def toy():
    return table_toy()


@pytest.fixture(scope="module")
def fitted(toy):
    train, _, _ = toy
    return Detector("ae", **FAST).fit(train)


def test_clone_gives_an_unfitted_copy_with_the_same_settings(fitted):
    copy = clone(fitted)
    assert not copy.__sklearn_is_fitted__() and "model_" not in vars(copy)
    assert copy.get_params() == fitted.get_params()
    from reconad.models.ae import AEConfig

    assert copy.train_config == fitted.train_config and copy.settings == fitted.settings
    assert AEConfig(**copy.model_config) == AEConfig(**fitted.model_config)
    with pytest.raises(NotFittedError):
        check_is_fitted(copy)
    check_is_fitted(fitted)


def test_get_params_covers_model_engine_and_detector_options():
    params = Detector("ae", epochs=7).get_params()
    assert params["model"] == "ae" and params["epochs"] == 7
    assert params["batch_size"] == 128  # the model's suggested engine setting
    assert {"latent_dim", "width", "lr", "seed", "monitor", "image_size", "fpr", "val_fraction"} <= set(params)
    assert params["latent_dim"] is None and params["fpr"] is None


def test_set_params_changes_and_checks_options():
    det = Detector("ae")
    assert det.set_params(epochs=2, latent_dim=3, fpr=0.1) is det
    assert det.train_config.epochs == 2 and det.model_config["latent_dim"] == 3 and det.settings["fpr"] == 0.1
    with pytest.raises(ConfigError, match="unknown option"):  # a name no option has: at once
        det.set_params(epochz=3, epochs=5)
    assert det.get_params()["epochs"] == 2  # a refused change leaves the detector as it was
    det.set_params(epochs=0)  # a value is checked in fit (scikit-learn's rule), as fit checks it
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        det.fit(np.zeros((20, 3), dtype=np.float32))
    det.set_params(epochs=2, model="vae")
    assert det.model_name == "vae" and det.get_params()["n_samples"] == 10


def test_grid_search_over_epochs_on_a_tabular_model(toy):
    train, test, labels = toy
    X = np.concatenate([train, test])
    y = np.concatenate([np.zeros(len(train), dtype=int), labels])
    # train on normal rows only; score on the labelled validation part
    cv = [(np.arange(len(train)), np.arange(len(train), len(X)))]
    auroc = make_scorer(roc_auc_score, response_method="decision_function")
    search = GridSearchCV(Detector("ae", **FAST), {"epochs": [1, 4]}, scoring=auroc, cv=cv, refit=False)
    search.fit(X, y)
    assert list(search.cv_results_["param_epochs"]) == [1, 4]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_params_["epochs"] in (1, 4)


def test_fit_predict_and_the_two_signs(fitted, toy):
    train, test, _ = toy
    s = fitted.decision_function(test)
    np.testing.assert_allclose(fitted.score_samples(test), -s)  # higher = more normal
    flags = Detector("ae", **FAST).fit_predict(train)
    assert set(np.unique(flags)) <= {0, 1} and flags.mean() < 0.2


def test_fitted_state_has_a_trailing_underscore_and_old_names_are_read_only_aliases(fitted):
    assert {"model_", "threshold_", "calibration_", "val_scores_", "history_"} <= set(vars(fitted))
    with pytest.warns(DeprecationWarning, match="use Detector.threshold_"):
        assert fitted.threshold == fitted.threshold_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert fitted.history is fitted.history_
        with pytest.raises(AttributeError):
            fitted.threshold = 1.0  # type: ignore[misc]
    assert fitted.model == "ae"  # ``model`` is the parameter (scikit-learn's rule), no longer an alias


@pytest.mark.parametrize("method", ["decision_function", "predict", "score_samples", "p_values", "anomaly_map"])
def test_methods_before_fit_raise_not_fitted_with_their_name(method, toy):
    with pytest.raises(NotFittedError, match=rf"before {method}\(\)"):
        getattr(Detector("ae"), method)(toy[1])
