"""Skip-GANomaly on one-class image sets, scored several ways by the same trained model.

Usage (from the project root, in the project's venv):

    python benchmarks/skip_ganomaly_scores.py 0,1,2 '{}' '{"dataset": "fashion-mnist", ...}'

Trains ``skip_ganomaly`` with the one-class benchmark's settings (28 px, seed 0) on the
training images of each class given and prints the test-set AUROC of its score, of the
contextual term (mean |x - G(x)|) and the squared one, of the latent term (mean
(f(x) - f(G(x)))^2 on D's features), and of the ink (mean pixel value).  The second
argument holds extra Detector options (JSON), the third the data (``score_variants``).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

from reconad.models.gan import mean_abs, mean_squared
from reconad.protocols.score_variants import variants_main, variants_parser


def rows(model: Any, images: torch.Tensor) -> dict[str, torch.Tensor]:
    x_hat = model.generator(images)
    _, f_real = model.discriminator(images)
    _, f_fake = model.discriminator(x_hat)
    return {
        "|x-G(x)|": mean_abs(images, x_hat),
        "(x-G(x))^2": mean_squared(images, x_hat),
        "latent": mean_squared(f_real, f_fake),
        "ink": images.flatten(1).mean(1),
    }


def parser() -> argparse.ArgumentParser:
    return variants_parser(__doc__)


if __name__ == "__main__":
    variants_main("skip_ganomaly", rows, __doc__)
