"""``benchmarks/video_paper_gpu.py`` end to end on CPU on a tiny fixture (frame size and
epochs overridden, as only tests and CPU figures may): results.json holds the metrics,
the epochs done, the device and every departure from the recipe; the wall-clock budget
stops training and says so."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from reconad.data.video import write_moving_shapes
from reconad.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "video_paper_gpu.py"
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("video_paper_gpu", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return write_moving_shapes(tmp_path_factory.mktemp("shapes"), n_train=2, n_test=2, n_frames=20, size=(24, 32))


def _args(script, shapes, out, *extra):
    argv = ["--root", str(shapes), "--out", str(out), "--frame-size", "24,32", "--device", "cpu", *extra]
    return script.parser().parse_args(argv)


def test_runs_end_to_end_on_cpu_and_writes_results(script, shapes, tmp_path):
    out = tmp_path / "run"
    script.main(_args(script, shapes, out, "--epochs", "2"))
    doc = json.loads((out / "results.json").read_text())
    for key in ("frame_auroc_centre", "frame_auroc_micro", "frame_auroc_clip", "pixel_auroc"):
        assert 0.0 <= doc[key] <= 1.0, key
    assert doc["device"] == "cpu" and doc["precision"] == "float32" and doc["frame_size"] == [24, 32]
    assert doc["epochs_done"] == 2.0 and doc["stopped_by_budget"] is False and doc["steps"] == 2
    assert doc["departures"] == {
        "frame_size": {"given": [24, 32], "recipe": [256, 256]},
        "epochs": {"given": 2, "recipe": 100},
    }
    assert doc["train_seconds"] > 0 and doc["score_seconds"] > 0 and doc["test_frames"] == 40


def test_the_budget_stops_training_and_records_the_epochs_done(script, shapes, tmp_path):
    out = tmp_path / "cut"
    script.main(_args(script, shapes, out, "--epochs", "50", "--budget-s", "1e-6", "--batch-size", "4"))
    doc = json.loads((out / "results.json").read_text())
    assert doc["stopped_by_budget"] is True and doc["steps"] == 1
    assert doc["epochs_done"] == pytest.approx(4 / 10)  # one batch of 4 of the 10 training windows


def test_gpu_precisions_are_refused_on_cpu(script, shapes, tmp_path):
    with pytest.raises(ConfigError, match="--precision bf16 is for CUDA"):
        script.main(_args(script, shapes, tmp_path / "x", "--precision", "bf16"))
