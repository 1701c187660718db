"""ALAD on MNIST-10k classes, scored four ways by the same trained model.

Usage (from the project root, in the project's venv):

    python benchmarks/alad_scores.py 0,1,2 '{}'

Trains ``alad`` with the one-class benchmark's settings (28 px, seed 0) on the training
images of each class given, prints the logged losses (every 4th epoch), then the
test-set AUROC of the paper's feature-matching score on D_xx, the cross-entropy of
D_xx(x, G(E(x))) against "real", the L1 and L2 reconstruction errors, and the ink (mean
pixel value) of each image.  The second argument holds extra Detector options (JSON).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from reconad.models.alad.config import SCORES
from reconad.protocols.score_variants import variants_main, variants_parser


def rows(model: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each of ALAD's own scores (``ALAD.score`` with ``config.score`` switched), and the ink."""
    chosen, out = model.config.score, {}
    try:
        for kind in SCORES:
            model.config.score = kind
            out[kind] = type(model).score(model, images)[0]
    finally:
        model.config.score = chosen
    return {**out, "ink": images.flatten(1).mean(1)}


def parser() -> argparse.ArgumentParser:
    return variants_parser(__doc__)


if __name__ == "__main__":
    variants_main("alad", rows, __doc__)
