"""Where the Detector departs from scikit-learn's estimator checks, and why: the one list that
``sklearn.utils.estimator_checks.check_estimator`` runs with (tests/test_sklearn_checks.py).

Every other check of scikit-learn 1.9 passes on the tabular Detector (``Detector("ae")``).
The failures below come from two documented choices, not from accidents:

* ``predict`` gives 1 = anomalous, 0 = normal (PyOD's labels) and ``decision_function``
  is higher for more anomalous samples; scikit-learn's outlier checks want -1 / +1 and the
  opposite sign.
* ``y`` of 0 and 1 marks known anomalies (1).  A model that cannot learn from them (every
  model but the semi-supervised ones: esad, hfr, cavga) refuses such a ``y`` with a
  ConfigError instead of silently training on the anomalies.  These checks pass 0/1 class
  labels as ``y`` to ``ae``, so ``ae`` refuses them; the same checks pass on ``esad``,
  which learns from them (``LABEL_CHECKS``, run in the test).
"""

from __future__ import annotations

LABELS_01 = (
    "predict gives 1 = anomalous / 0 = normal (PyOD's labels) and decision_function is higher "
    "for more anomalous samples, not scikit-learn's -1 / +1 and sign"
)
REFUSES_Y = (
    "the check fits with 0/1 class labels as y; a 0/1 y marks known anomalies, which a model of "
    "normal data only (ae) refuses rather than silently trains on; the check passes on esad"
)

#: check name -> why it fails on Detector("ae"); any other failure is a defect.
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_outliers_fit_predict": LABELS_01,
    "check_outliers_train": LABELS_01,
    "check_pipeline_consistency": REFUSES_Y,
    "check_estimators_nan_inf": REFUSES_Y,
    "check_estimators_pickle": REFUSES_Y,
    "check_fit_idempotent": REFUSES_Y,
    "check_fit_check_is_fitted": REFUSES_Y,
    "check_n_features_in": REFUSES_Y,
}

#: the checks listed for REFUSES_Y alone: they must pass on a model that learns from labels.
LABEL_CHECKS = tuple(name for name, why in EXPECTED_FAILED_CHECKS.items() if why == REFUSES_Y)
