"""ADAE on one MNIST-10k class, scored five ways by the same trained model.

Usage (from the project root, in the project's venv):

    python benchmarks/adae_scores.py 0 '{}'

Trains ``adae`` with the one-class benchmark's settings on the training images of the
class given and prints the test-set AUROC of the paper's ||x - D(G(x))||^2, of G's own
residual ||x - G(x)||^2, of D's residual on the real image ||x - D(x)||^2, of D's
residual on G's output ||G(x) - D(G(x))||^2, and of the ink (mean pixel value).  The
second argument holds extra Detector options (JSON).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from reconad.protocols.score_variants import variants_main, variants_parser


def _sq(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1)


def rows(model: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    g = model.generator(images)
    dg = model.discriminator(g)
    return {
        "x-D(G(x))": _sq(images, dg),
        "x-G(x)": _sq(images, g),
        "x-D(x)": _sq(images, model.discriminator(images)),
        "G(x)-D(G(x))": _sq(g, dg),
        "ink": images.flatten(1).mean(1),
    }


def parser() -> argparse.ArgumentParser:
    return variants_parser(__doc__)


if __name__ == "__main__":
    variants_main("adae", rows, __doc__)
