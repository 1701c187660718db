"""The one way reconad writes JSON: strict JSON that every reader can parse.

Python's ``json`` writes NaN and infinities as the bare words ``NaN`` / ``Infinity``,
which are not JSON (JavaScript, jq, Go and most other readers reject the file).  Here
every non-finite float (Python or numpy) becomes ``null`` and numpy scalars and arrays
become plain numbers and lists; the dump then runs with ``allow_nan=False``, so nothing
non-finite can slip through.  A writer that nulls a value should say why beside it
(``metrics.json`` has an ``undefined`` field for that).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["json_safe", "dumps", "write_json"]


def json_safe(value: Any) -> Any:
    """``value`` with NaN / infinities as None and numpy values as plain Python ones (containers walked)."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {
            k if isinstance(k, (str, int, float, bool)) or k is None else str(k): json_safe(v) for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    """``json.dumps`` of ``json_safe(value)``, refusing anything non-finite that is left."""
    return json.dumps(json_safe(value), allow_nan=False, **kwargs)


def write_json(path: str | os.PathLike[str], value: Any, indent: int | None = 2, **kwargs: Any) -> Path:
    """Write ``value`` as strict JSON (see ``dumps``) to a temporary sibling, then rename it over
    ``path``: a reader never sees half a file."""
    path = Path(path)
    from reconad.atomic import write_text  # the one atomic writer (unique temporary names)

    write_text(path, dumps(value, indent=indent, **kwargs) + "\n")
    return path
