"""Exceptions the library raises for bad input; the CLI prints them as one line."""

from __future__ import annotations


class ReconadError(Exception):
    """Base class: a user-facing problem (bad path, bad option, bad file)."""


class DataError(ReconadError):
    """A dataset folder, image or table cannot be used."""


class ConfigError(ReconadError):
    """An unknown model, backbone or option value."""


class ModelFileError(ReconadError):
    """A saved model directory is missing, tampered with or not ours."""
