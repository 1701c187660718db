"""EGBAD on KDDCUP99 (the ``kddcup99`` protocol), scored several ways by the same fit.

Usage (from the project root, in the project's venv):

    python benchmarks/egbad_kdd_scores.py 0,1,2,3,4 '{"spectral_norm": false, "ema_decay": 0}'

For each seed: the protocol's split (``kdd_split``), ``egbad`` fitted on the train half's
attack rows with the protocol's batch size plus the options given (JSON), and the test
half scored five ways by that one fit: the paper's two scores at α = 0.9 (``ce``, the
default, and ``fm``), the reconstruction ||x - G(E(x))||_1 alone, D's verdict on
(x, E(x)) alone, and the official code's cross-entropy on (G(E(x)), E(x)) at α = 0.9.
Prints one JSON line per seed and score: precision, recall and F1 of the top 20%, AUROC,
fit seconds.  ``--data-root`` is the folder of the 10% file.
"""

from __future__ import annotations

import argparse
import json
import time
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from reconad import Detector
from reconad.data.table_files import find_kddcup99_file, load_kddcup99
from reconad.metrics import image_auroc
from reconad.models.gan import sum_abs
from reconad.protocols.tabular import KDD_BATCH_SIZE, kdd_split, top_fraction_prf

Score = Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
A = 0.9  # the paper's weight of the reconstruction


def _verdict(logits: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.softplus(-logits)  # BCE against "real", per row


SCORES: dict[str, Score] = {
    "ce, a=0.9": lambda m, x, z, r: A * sum_abs(x, r) + (1 - A) * _verdict(m.discriminator(x, z)[0]),
    "fm, a=0.9": lambda m, x, z, r: (
        A * sum_abs(x, r) + (1 - A) * sum_abs(m.discriminator(x, z)[1], m.discriminator(r, z)[1])
    ),
    "rec only": lambda m, x, z, r: sum_abs(x, r),
    "D(x, E(x)) only": lambda m, x, z, r: _verdict(m.discriminator(x, z)[0]),
    "official ce, a=0.9": lambda m, x, z, r: A * sum_abs(x, r) + (1 - A) * _verdict(m.discriminator(r, z)[0]),
}


def _scored_by(fn: Score) -> Callable[..., tuple[torch.Tensor, torch.Tensor]]:
    def score(model: Any, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = model.encoder(x)
        x_rec = model.generator(z)
        return fn(model, x, z, x_rec), (x - x_rec).abs()

    return score


def main(seeds: list[int], options: dict[str, Any], data_root: str) -> None:
    torch.set_num_threads(1)
    data = load_kddcup99(find_kddcup99_file(data_root))
    for seed in seeds:
        split = kdd_split(data, seed)
        t0 = time.perf_counter()
        det = Detector("egbad", **{"batch_size": KDD_BATCH_SIZE, "progress": False, **options, "seed": seed})
        det.fit(split.train_normal)
        fit_s = round(time.perf_counter() - t0, 1)
        for name, fn in SCORES.items():
            det.model_.score = types.MethodType(_scored_by(fn), det.model_)
            scores = np.asarray(det.decision_function(split.test), dtype=np.float64)
            result = {"seed": seed, "score": name, **top_fraction_prf(split.y_test, scores)}
            result.update(auroc=image_auroc(split.y_test, scores), fit_s=fit_s)
            print(json.dumps(result), flush=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("seeds", help="comma-separated seeds, e.g. 0,1,2,3,4")
    p.add_argument("options", nargs="?", default="{}", help="extra Detector options (JSON)")
    p.add_argument("--data-root", default="../shared/data/kddcup99")
    return p


if __name__ == "__main__":
    args = parser().parse_args()
    main([int(s) for s in args.seeds.split(",")], json.loads(args.options), args.data_root)
