"""A run's exported files (``RUN/export/``) and the JSON beside each: where they are, and
whether they come from the run's model file (fingerprints checked, one-line errors).

An export records the SHA-256 of the model file it came from and of its own file; one
that records other weights (stale, or copied from another run) or whose file does not
match its checksum is refused by every engine that would run it, never silently used nor
silently replaced (the file may be someone's deployment).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconad.errors import ConfigError, ModelFileError

__all__ = ["EXPORT_FILE", "INT8_FILE", "check_export", "export_tiling", "int8_export", "read_export_json"]

#: where ``reconad export RUN`` writes the ONNX model (and where the ONNX engines look)
EXPORT_FILE = Path("export") / "model.onnx"
#: the int8 export of ``reconad export RUN --quantize int8``
INT8_FILE = Path("export") / "model.int8.onnx"


def read_export_json(path: Path, run_dir: Path) -> dict[str, Any]:
    """The JSON beside the export ``path`` (ModelFileError, one line, when missing or unreadable)."""
    meta_path = path.with_suffix(".json")
    try:
        meta: dict[str, Any] = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{meta_path}: missing or unreadable beside {path} ({exc})") from None
    if not isinstance(meta, dict) or meta.get("weights_sha256") is None:
        raise ModelFileError(
            f"{path} records no model checksum (an older export): run `reconad export {run_dir}` to re-export it"
        )
    return meta


def check_export(path: Path, run_dir: Path, weights_sha256: str) -> dict[str, Any]:
    """The JSON beside an export, once the export is shown to come from this run's model file."""
    from reconad.serialization import sha256_of

    meta = read_export_json(path, run_dir)
    if meta["weights_sha256"] != weights_sha256:
        raise ModelFileError(
            f"{path} was exported from other weights than {run_dir / 'model'} (stale or foreign): "
            f"run `reconad export {run_dir}` to re-export it"
        )
    if meta.get("onnx_sha256") != sha256_of(path):
        raise ModelFileError(
            f"{path} does not match its checksum in {path.with_suffix('.json')}: the file was modified or replaced "
            f"(e.g. copied from another run): run `reconad export {run_dir}` to re-export it"
        )
    return meta


def int8_export(run_dir: Path, weights_sha256: str) -> tuple[Path, dict[str, Any]]:
    """The run's int8 export and its JSON, when it exists, matches the model and passed its
    accuracy check (ConfigError naming the file and what to run otherwise)."""
    path = run_dir / INT8_FILE
    if not path.exists():
        raise ConfigError(f"{path} does not exist: run `reconad export {run_dir} --quantize int8` first")
    meta = check_export(path, run_dir, weights_sha256)
    check = meta.get("accuracy_check") or {}
    if not check.get("offered"):
        raise ConfigError(f"int8 is not offered for {run_dir}: {check.get('reason', 'no accuracy check recorded')}")
    return path, meta


def export_tiling(meta: dict[str, Any]) -> tuple[int, int] | None:
    """(tile size, overlap) an export records, or None for a model scoring whole images."""
    tiling = (meta.get("preprocessing") or {}).get("tiling")
    if not tiling:
        return None
    return int(tiling["tile_size"]), int(tiling["overlap"])
