"""Exceptions the library raises for bad input; the CLI prints them as one line."""

from __future__ import annotations


class ReconadError(Exception):
    """Base class: a user-facing problem (bad path, bad option, bad file)."""


class DataError(ReconadError, ValueError):
    """A dataset folder, image or table cannot be used (a ``ValueError``, as scikit-learn's
    input checks raise for data they refuse)."""


class ConfigError(ReconadError, ValueError):
    """An unknown model, backbone or option value (a ``ValueError``, as scikit-learn raises
    for a parameter it refuses)."""


class DataTypeError(DataError, TypeError):
    """Data of a type that cannot be used (sparse input, non-numeric cells): a ``TypeError``
    too, as numpy and scikit-learn raise for it."""


class ModelFileError(ReconadError):
    """A saved model directory is missing, tampered with or not ours."""


class TrainingError(ReconadError, FloatingPointError):
    """Training cannot go on (e.g. a loss became NaN); says which optimiser and when."""


class ScoringError(ReconadError, FloatingPointError):
    """A model gave a NaN or infinite score on finite input: no verdict can be made from it."""


_not_fitted: type | None = None


def _not_fitted_class() -> type:
    """``NotFittedError``: a ReconadError that is also scikit-learn's NotFittedError.

    Built on first use: importing scikit-learn costs about a second, which ``import
    reconad`` and ``reconad --help`` must not pay.
    """
    global _not_fitted
    if _not_fitted is None:
        from sklearn.exceptions import NotFittedError as SklearnNotFitted

        _not_fitted = type(
            "NotFittedError",
            (ReconadError, SklearnNotFitted),
            {"__module__": __name__, "__doc__": "A method that needs a fitted Detector was called before fit()."},
        )
    return _not_fitted


def not_fitted(what: str, method: str) -> ReconadError:
    """The error for calling ``method`` on an unfitted ``what`` (raise it)."""
    cls = _not_fitted_class()
    return cls(f"this {what} is not fitted yet: call fit() or {what}.load() before {method}()")


def __getattr__(name: str) -> type:
    if name == "NotFittedError":
        return _not_fitted_class()
    raise AttributeError(name)
