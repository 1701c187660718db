"""One tiny trained HFR run (64 px, width 32, 1 epoch) on the tiny texture set, shared by
the export and serve tests so both exercise the same model."""

from __future__ import annotations

from pathlib import Path

SIZE = 64


def train_tiny_run(root: Path, out: Path) -> Path:
    """Train the tiny HFR run on ``root``'s brick category into ``out`` (BatchNorm statistics
    and the residual normalisation are real; the threshold targets fpr 0.25)."""
    from reconad.data.spec import DataSpec
    from reconad.runs import train_run

    spec = DataSpec("mvtec", str(root), "brick", image_size=SIZE)
    train_run(
        spec,
        out,
        epochs=1,
        batch_size=8,
        width=32,
        bottleneck=16,
        device="cpu",
        progress=False,
        patience=None,
        val_fraction=0.25,
        fpr=0.25,
    )
    return out
