"""EGBAD on one-class image sets, scored several ways by the same trained model.

Usage (from the project root, in the project's venv):

    python benchmarks/egbad_scores.py 0,1,2 '{}' '{"dataset": "fashion-mnist", ...}'

Trains ``egbad`` with the one-class benchmark's settings (28 px, seed 0) on the training
images of each class given and prints the test-set AUROC of the paper's two scores
(``fm``, ``ce``, each with the paper's α = 0.9), of their reconstruction term alone (||x - G(E(x))||_1), of each discriminator
term alone, and of the ink (mean pixel value).  The second argument holds extra Detector
options (JSON), the third the data (``score_variants``).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from reconad.models.gan import sum_abs
from reconad.protocols.score_variants import variants_main, variants_parser


def rows(model: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    z = model.encoder(images)
    x_rec = model.generator(z)
    logits, f_real = model.discriminator(images, z)
    _, f_rec = model.discriminator(x_rec, z)
    l_g, fm, ce = sum_abs(images, x_rec), sum_abs(f_real, f_rec), torch.nn.functional.softplus(-logits)
    a = 0.9  # the paper's weight
    return {
        "fm, a=0.9": a * l_g + (1 - a) * fm,
        "ce, a=0.9": a * l_g + (1 - a) * ce,
        "rec only": l_g,
        "fm term": fm,
        "ce term": ce,
        "ink": images.flatten(1).mean(1),
    }


def parser() -> argparse.ArgumentParser:
    return variants_parser(__doc__)


if __name__ == "__main__":
    variants_main("egbad", rows, __doc__)
