"""The record of a run's data, ``RUN/run.json``, read in one place (``reconad.rundir`` writes it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconad.errors import ModelFileError

__all__ = ["RUN_FILE", "read_run_info"]

RUN_FILE = "run.json"


def read_run_info(run: str | Path) -> dict[str, Any] | None:
    """``RUN/run.json`` (None when there is none); ModelFileError (one line) when it is not valid
    JSON or lacks its ``data`` record."""
    path = Path(run) / RUN_FILE
    if not path.exists():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path} is not valid JSON ({exc}): the run's record is damaged") from None
    if not isinstance(info, dict) or not isinstance(info.get("data"), dict):
        raise ModelFileError(f"{path} is incomplete: it records no 'data' (which dataset the run was trained on)")
    return info
