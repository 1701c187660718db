"""ALOCC on one MNIST-10k class, scored four ways by the same trained model.

Usage (from the project root, in the project's venv):

    python benchmarks/alocc_scores.py 0 '{}'

Trains ``alocc`` with the one-class benchmark's settings (28 px, seed 0) on the
training images of the class given, prints the logged losses (every 4th epoch), then
the test-set AUROC of 1 - D(R(x)) (the paper's score), 1 - D(x), the reconstruction
error ||x - R(x)||^2 and the ink (mean pixel value) of each image, with the means over
normal and anomalous images.  The second argument holds extra Detector options (JSON).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from reconad.protocols.score_variants import variants_main, variants_parser


def rows(model: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    rec = model.reconstructor(images)
    return {
        "1-D(R(x))": 1 - torch.sigmoid(model.discriminator(rec)[0]),
        "1-D(x)": 1 - torch.sigmoid(model.discriminator(images)[0]),
        "||x-R(x)||^2": (images - rec).pow(2).flatten(1).sum(1),
        "ink": images.flatten(1).mean(1),
    }


def parser() -> argparse.ArgumentParser:
    return variants_parser(__doc__)


if __name__ == "__main__":
    variants_main("alocc", rows, __doc__)
