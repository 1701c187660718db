"""What every reconstruction-family test module shares: each model fitted once on the bars
toy (``bars_fitter``) and the check that it learnt them (``assert_learns_the_bars``), and the
engine checks: tiny networks at a high learning rate stay finite, and a kill mid-epoch then
``resume`` equals a run that was never interrupted.  (Export and engine parity of every
registered model: tests/test_engine_parity.py.)"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from torch.utils.data import Dataset

from helpers.recon_toys import bar_images
from reconad import Detector
from reconad.data.inputs import ArrayImageDataset
from reconad.engine import TrainConfig, Trainer, TrainHistory

Toy = tuple[np.ndarray, np.ndarray, np.ndarray]
#: (train images, train labels) -> what a key fits on, for keys that add labelled anomalies
Augment = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def bars_fitter(
    bars: Toy, base: dict[str, Any], settings: dict[str, dict[str, Any]], augment: dict[str, Augment] | None = None
) -> Callable[[str], Detector]:
    """Each key of ``settings`` (a model name, or ``model-variant``) fitted once on the 16 px bars,
    lazily: ``base`` then the key's own settings; ``augment[key]`` adds labelled training data."""
    cache: dict[str, Detector] = {}

    def get(key: str) -> Detector:
        if key not in cache:
            train, y = bars[0], None
            if augment and key in augment:
                train, y = augment[key](train)
            # these check learning: no calibration share taken from the 160 bars (calibration tests do that)
            det = Detector(key.split("-")[0], image_size=16, **{"calibration": "holdout", **base, **settings[key]})
            cache[key] = det.fit(train, y)
        return cache[key]

    return get


def assert_learns_the_bars(det: Detector, bars: Toy, min_auroc: float) -> None:
    """Maps of the image's size, the bars told apart, and every epoch run (no early stop)."""
    _, test, labels = bars
    scores, maps = det.score_and_map(test)
    assert maps.shape == (len(test), 16, 16) and np.isfinite(maps).all()
    assert roc_auc_score(labels, scores) > min_auroc
    assert det.history_.monitor == "none" and det.history_.epochs_run == det.train_config.epochs


def tiny_images(n: int = 40) -> ArrayImageDataset:
    """``n`` normal 8 px bars (seeded)."""
    return ArrayImageDataset(bar_images(n, np.random.default_rng(3), vertical=False, size=8), 8)


def fit_tiny(model: Any, data: Dataset, epochs: int, checkpoint_dir: Any = None, resume: bool = False) -> TrainHistory:
    """Train ``model`` at batch 4 and lr 1e-2 (no early stopping) on the CPU."""
    cfg = TrainConfig(epochs=epochs, batch_size=4, lr=1e-2, patience=None, progress=False, device="cpu")
    return Trainer(cfg, checkpoint_dir=checkpoint_dir, resume=resume).fit(model, data)


def assert_finite(model: Any, history: TrainHistory) -> torch.Tensor:
    """Every logged loss, weight, score and map is finite; returns the maps of 3 random 8 px images."""
    assert all(np.isfinite(v).all() for v in history.logs.values())
    assert all(torch.isfinite(t).all() for t in model.state_dict().values() if t.is_floating_point())
    model.eval()
    with torch.inference_mode():
        scores, maps = model.score_images(torch.rand(3, 3, 8, 8))
    assert torch.isfinite(scores).all() and torch.isfinite(maps).all()
    return maps


class Kill(Exception):
    pass


def assert_resume_equals_uninterrupted(
    cls: type, train: Callable[..., tuple[Any, TrainHistory]], checkpoint_dir: Any, monkeypatch: Any, kill_at: int = 13
) -> None:
    """``train(epochs=3, checkpoint_dir=..., resume=...)`` killed at step ``kill_at`` and
    resumed gives the weights and logs of one uninterrupted run."""
    step = cls.training_step

    def killed(self: Any, batch: Any, ctx: Any) -> Any:
        if ctx.global_step == kill_at:
            raise Kill
        return step(self, batch, ctx)

    monkeypatch.setattr(cls, "training_step", killed)
    with pytest.raises(Kill):
        train(epochs=3, checkpoint_dir=checkpoint_dir)
    monkeypatch.setattr(cls, "training_step", step)
    resumed, h_resumed = train(epochs=3, checkpoint_dir=checkpoint_dir, resume=True)
    straight, h_straight = train(epochs=3)
    for (k, a), b in zip(resumed.state_dict().items(), straight.state_dict().values()):
        assert torch.equal(a, b), k
    assert h_resumed.logs == h_straight.logs
