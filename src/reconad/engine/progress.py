"""Progress bars that stay quiet when nobody is watching."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any, Protocol, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ProgressBar(Protocol[T_co]):
    """What callers use of a bar: iterate it, move it on by hand, read its count, show values, close it."""

    n: float

    def __iter__(self) -> Iterator[T_co]: ...

    def update(self, n: float = 1) -> bool | None: ...

    def close(self) -> None: ...

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True) -> None: ...


def progress_enabled(requested: bool = True) -> bool:
    return bool(requested) and sys.stderr.isatty()


def progress(iterable: Iterable[T], enabled: bool = True, **kwargs: Any) -> ProgressBar[T]:
    """A tqdm bar on a terminal; the plain iterable otherwise (logs, CI, pipes)."""
    bar: ProgressBar[T] = tqdm(
        iterable, disable=not progress_enabled(enabled), leave=False, dynamic_ncols=True, **kwargs
    )
    return bar
