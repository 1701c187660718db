"""``make demo``: HFR on the embedded texture data, end to end.

Generates the texture set (scikit-image's brick / grass / gravel with painted defects,
MVTec layout) if it is not there, trains one HFR per category with default settings,
evaluates, prints image / pixel AUROC and PRO, and writes heat maps to
``<out>/<category>/heatmaps/``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from reconad.errors import ReconadError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reconad.demo")
    from reconad.data.spec import DEFAULT_TEXTURES_ROOT

    p.add_argument("--data", default=DEFAULT_TEXTURES_ROOT)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    from reconad.data.textures import ensure_textures
    from reconad.protocols import LocalizationSettings, run_protocol

    t0 = time.perf_counter()
    try:
        root = ensure_textures(args.data)
        print(f"texture data ready at {root} ({time.perf_counter() - t0:.0f}s)", flush=True)
        settings = LocalizationSettings(
            out=args.out,
            model="hfr",
            options={"progress": not args.quiet},
            command="make demo",
            dataset="textures",
            root=str(Path(root).resolve()),
            heatmaps=8,
        )
        result = run_protocol("localization", settings)
    except ReconadError as exc:
        print(f"reconad: error: {exc}", file=sys.stderr)
        return 2
    print(f"\nheat maps: {args.out}/<category>/heatmaps/   total {time.perf_counter() - t0:.0f}s")
    return 0 if result["per_category"] else 1


if __name__ == "__main__":
    sys.exit(main())
