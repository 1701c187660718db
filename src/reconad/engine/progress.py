"""Progress bars that stay quiet when nobody is watching."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


def progress_enabled(requested: bool = True) -> bool:
    return bool(requested) and sys.stderr.isatty()


def progress(iterable: Iterable[T], enabled: bool = True, **kwargs) -> Iterable[T]:
    """A tqdm bar on a terminal; the plain iterable otherwise (logs, CI, pipes)."""
    return tqdm(iterable, disable=not progress_enabled(enabled), leave=False, dynamic_ncols=True, **kwargs)
