"""A fitted Detector saved as an older version would have saved it."""

from __future__ import annotations

import json
from pathlib import Path

from reconad import Detector


def reload_without_option(det: Detector, path: Path, option: str) -> Detector:
    """Save ``det`` to ``path`` with ``option`` removed from its model config (as a file
    written before the option existed), and load it back."""
    saved = det.save(path)
    cfg = json.loads((saved / "config.json").read_text())
    del cfg["model_config"][option]
    (saved / "config.json").write_text(json.dumps(cfg))
    return Detector.load(saved)
