"""MemAE's ``paper`` preset: the official video recipe as model options, engine options and
the video protocol's clip settings; what the user gives beside it wins and is recorded."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from reconad import Detector
from reconad.cli import main
from reconad.clips import ClipScores
from reconad.data.video import Clip, write_moving_shapes
from reconad.errors import ConfigError
from reconad.models import build_model
from reconad.models.memae import PAPER, MemAE
from reconad.protocols.settings import VideoSettings
from reconad.protocols.video import centre_metrics, model_options

pytestmark = pytest.mark.usefixtures("single_thread")


def test_the_preset_builds_the_official_network():
    assert MemAE.presets["paper"] == PAPER.model
    det = Detector("memae", preset="paper")
    assert det.model_config == PAPER.model
    torch.manual_seed(0)
    m = build_model("memae", input_shape=[1, 16, 32, 32], **PAPER.model)
    assert m.encoder.channels == [1, 96, 128, 256, 256]
    assert m.encoder.sizes[-1] == (2, 2, 2)
    assert tuple(m.memory.slots.shape) == (2000, 256)
    assert m.memory.threshold == 0.0025 and m.memory.similarity == "dot" and m.memory.temperature == 1.0
    assert isinstance(m.decoder.posts[-1], torch.nn.Identity)  # no output activation in [-1, 1]
    conv = m.encoder.net[0]
    assert abs(float(conv.weight.detach().std()) - 0.02) < 0.005  # N(0, 0.02), not PyTorch's uniform
    default = build_model("memae", input_shape=[1, 16, 32, 32])
    assert isinstance(default.decoder.posts[-1], torch.nn.Sigmoid)


def test_signed_range_measures_errors_in_minus_one_to_one():
    m = build_model("memae", input_shape=[1, 4, 16, 16], width=4, input_range="signed").eval()
    x = torch.rand(2, 1, 4, 16, 16)
    seen = {}

    def zeros(inp):
        seen["x"] = inp
        return torch.zeros_like(inp), torch.zeros(1, 2)

    m.reconstruct = zeros  # type: ignore[method-assign]
    scores, err = m.score(x)
    assert float(seen["x"].min()) < -0.9 and float(seen["x"].max()) > 0.9
    torch.testing.assert_close(err, (2 * x - 1) ** 2)
    with pytest.raises(ConfigError, match="video clips only"):
        build_model("memae", input_shape=[1, 16, 16], input_range="signed")
    with pytest.raises(ConfigError, match="input_range"):
        build_model("memae", input_shape=[1, 4, 16, 16], input_range="half")


def test_video_settings_take_the_recipe_and_record_what_the_user_changed(tmp_path):
    s = VideoSettings(root=str(tmp_path), options={"preset": "paper"})
    assert (s.frame_size, s.channels, s.clip_length, s.train_stride, s.test_stride) == ([256, 256], 1, 16, 1, 1)
    assert s.preset_departures == {}
    opts = model_options(s, "memae")
    assert opts["lr"] == 1e-4 and opts["batch_size"] == 14 and opts["epochs"] == 100 and opts["val_fraction"] == 0
    assert "width" not in opts  # the model part travels as the Detector's preset

    s = VideoSettings(root=str(tmp_path), frame_size=[64, 96], options={"preset": "paper", "epochs": 3})
    assert s.frame_size == [64, 96] and s.train_stride == 1
    assert s.preset_departures == {
        "--frame-size": {"given": [64, 96], "preset": [256, 256]},
        "epochs": {"given": 3, "preset": 100},
    }
    assert model_options(s, "memae")["epochs"] == 3

    plain = VideoSettings(root=str(tmp_path))
    assert (plain.frame_size, plain.train_stride, plain.test_stride) == ([64, 96], 4, 8)
    assert model_options(plain, "memae")["width"] == 8

    frames = VideoSettings(root=str(tmp_path), model="motion_knn")  # a frame model: its own clip settings
    assert (frames.frame_size, frames.clip_length) == ([256, 384], 8)
    assert model_options(frames, "motion_knn") == {}  # the 3-D models' CPU options are not its own
    mixed = VideoSettings(root=str(tmp_path), model="memae,motion_knn")  # models that differ: the common defaults
    assert mixed.frame_size == [64, 96]


def test_a_model_without_the_preset_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"--preset paper: model ae has no such preset"):
        VideoSettings(root=str(tmp_path), model="memae,ae", options={"preset": "paper"})


def test_centre_metrics_put_each_window_on_its_centre_frame():
    n, length = 30, 8
    labels = np.zeros(n, np.int64)
    labels[12:18] = 1
    starts = np.arange(n - length + 1)
    # window j scores what its centre frame (j + 4) is: the official alignment
    centre = labels[starts + length // 2].astype(float)
    clip = Clip("c", np.zeros((n, 4, 4, 1), np.uint8), [], labels=labels)
    scored = [ClipScores(clip, np.zeros(n), np.zeros((n, 4, 4)), starts, centre, centre)]
    m = centre_metrics(scored, length)
    assert m["frame_auroc_centre"] == 1.0 and m["frame_auroc_centre_sq"] == 1.0
    shifted = labels[starts].astype(float)  # aligned to the first frame instead: not the same
    assert (
        centre_metrics([ClipScores(clip, np.zeros(n), np.zeros((n, 4, 4)), starts, shifted, shifted)], length)[
            "frame_auroc_centre"
        ]
        < 0.9
    )


def test_the_preset_runs_end_to_end_and_records_its_departures(tmp_path, capsys):
    root = write_moving_shapes(tmp_path / "shapes", n_train=2, n_test=2, n_frames=16, size=(24, 32))
    out = tmp_path / "out"
    argv = ["benchmark", "video", "--root", str(root), "--set", "preset=paper", "--frame-size", "24,32"]
    argv += ["--clip-length", "8", "--epochs", "1", "--set", "width=4", "--set", "memory_size=20", "--out", str(out)]
    assert main(argv) == 0
    console = capsys.readouterr().out
    assert "preset paper: --frame-size 24,32 given, the preset's 256,256" in console
    doc = json.loads((out / "results.json").read_text())
    settings = doc["settings"]
    assert settings["train_stride"] == 1 and settings["test_stride"] == 1
    assert settings["preset_departures"]["width"] == {"given": 4, "preset": 32}
    assert settings["preset_recipe"]["model"]["memory_size"] == 2000
    row = doc["rows"][0]
    assert 0 <= row["frame_auroc_centre"] <= 1 and row["epochs_run"] == 1
    assert "Preset paper, with the user's departures: --frame-size 24,32" in (out / "results.md").read_text()
