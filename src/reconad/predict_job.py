"""What wrote a ``reconad predict`` output folder, and whether ``--resume`` may continue it.

``OUT/predict.json`` records the job besides the pipeline: the pipeline's fingerprint
(model file, configuration, engine and its file, tiling), its threshold and calibration,
the input list resolved to real paths (its SHA-256) and the folder the relative paths of
the rows are relative to.  ``--resume`` continues only an identical job; anything else is
refused in one line saying what differs, as is an output whose rows are damaged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reconad.errors import DataError

__all__ = [
    "JOB_KEY",
    "OVERLAYS",
    "check_overlays",
    "check_resume",
    "complete_rows",
    "done_counter",
    "job_record",
    "kept_rows",
    "real_key",
]

#: the key of ``predict.json`` that holds the job record
JOB_KEY = "job"
#: which images ``predict --overlays`` gives a heat-map overlay
OVERLAYS = ("all", "flagged", "none")


def check_overlays(overlays: str, threshold: float | None) -> None:
    """ConfigError (one line) for an unknown ``--overlays``, or ``flagged`` without a threshold."""
    from reconad.errors import ConfigError

    if overlays not in OVERLAYS:
        raise ConfigError(f"--overlays {overlays!r}: choose one of {', '.join(OVERLAYS)}")
    if overlays == "flagged" and threshold is None:
        raise ConfigError("--overlays flagged: this run has no threshold to flag images by; use all or none")


def real_key(path: str | os.PathLike[str], base: str | None = None) -> str:
    """The real path a row's path names (relative paths against ``base``, default the cwd)."""
    text = os.fspath(path)
    if base is not None and not os.path.isabs(text):
        text = os.path.join(base, text)
    return os.path.realpath(text)


def job_record(describe: dict[str, Any], files: Sequence[Path], overlays: str = "all") -> dict[str, Any]:
    """The record of a job: what ``--resume`` must find identical (see the module docstring)."""
    real = [real_key(p) for p in files]
    return {
        "overlays": overlays,
        "fingerprint": describe["identity"]["fingerprint"],
        "threshold": describe.get("threshold"),
        "calibration": describe.get("calibration"),
        "inputs": len(real),
        "inputs_sha256": hashlib.sha256("\n".join(real).encode("utf-8")).hexdigest(),
        "base": os.getcwd(),
    }


_WHAT = {
    "fingerprint": "another model, engine or tiling",
    "threshold": "another threshold",
    "calibration": "another calibration",
    "inputs": "another number of inputs",
    "inputs_sha256": "another input list (resolved to real paths)",
    "overlays": "another --overlays",
}


def _recorded(out: Path) -> dict[str, Any] | None:
    path = out / "predict.json"
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"--resume: {path} is damaged ({exc}); predict afresh without --resume") from None
    job = doc.get(JOB_KEY) if isinstance(doc, dict) else None
    return job if isinstance(job, dict) else {}


def check_resume(out: Path, job: dict[str, Any], has_rows: bool) -> str:
    """The folder the kept rows' relative paths are relative to; DataError (one line) where
    ``out`` was written by another job or by a predict that did not record its job."""
    recorded = _recorded(out)
    if not recorded:
        if has_rows:
            raise DataError(
                f"--resume: {out} holds scores but its predict.json does not record the job that wrote them; "
                "predict afresh without --resume or into another --out"
            )
        return job["base"]
    # an output written before --overlays existed has an overlay for every image
    differ = [_WHAT[k] for k in _WHAT if recorded.get(k, "all" if k == "overlays" else None) != job[k]]
    if differ and has_rows:
        raise DataError(
            f"--resume continues only the job that wrote {out}, and this one has {', '.join(differ)}: "
            "give the same run, engine, tiling and inputs, or predict without --resume (or into another --out)"
        )
    return str(recorded.get("base") or job["base"]) if has_rows else job["base"]


def complete_rows(path: Path, with_header: bool = False) -> list[list[str]]:
    """The complete data rows of a CSV written by this module (the header first with
    ``with_header``); a trailing partial line (an interrupted write) is cut from the file.
    [] when the file does not exist."""
    if not path.exists():
        return []
    data = path.read_bytes()
    text = data.decode("utf-8")  # before cutting: a file that is not ours is left as it is
    if data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
        text = data.decode("utf-8")
        with open(path, "r+b") as fh:
            fh.truncate(len(data))
    rows = list(csv.reader(text.splitlines()))
    return rows if with_header else rows[1:] if rows else []


def kept_rows(path: Path, header: list[str], numeric: tuple[int, ...] = ()) -> list[list[str]]:
    """The rows of an earlier call's CSV (a last line cut by an interruption is dropped); a
    file that is not UTF-8, has another header or a damaged row is refused in one line."""
    try:
        rows = complete_rows(path, with_header=True)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"--resume: {path} is not UTF-8 text ({exc.reason} at byte {exc.start}); predict afresh"
        ) from None
    except csv.Error as exc:
        raise DataError(f"--resume: {path} cannot be read as CSV ({exc}); predict afresh") from None
    if not rows:
        return []
    if rows[0] != header:
        raise DataError(f"--resume: {path} has the header {rows[0]}, not {header}; predict afresh")
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(header) or not _numbers(row, numeric):
            raise DataError(f"--resume: {path} line {n} is damaged ({','.join(row)[:80]!r}); predict afresh")
    return rows[1:]


def _numbers(row: list[str], columns: tuple[int, ...]) -> bool:
    try:
        return all(float(row[i]) == float(row[i]) for i in columns)  # NaN is not a score
    except ValueError:
        return False


def done_counter(rows: list[list[str]], base: str | None) -> Counter:
    """The real paths of kept rows, as a multiset (an input given twice is scored twice)."""
    return Counter(real_key(r[0], base) for r in rows if r)
