"""Tests for the command line: train / test / predict / resume in-process on the tiny
texture set, one-line errors for bad input, and the entry points as real processes.

One run (64x64, 2 epochs) is trained once per module with ``reconad train``; the
other commands read it (``--resume`` works on a copy).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reconad import Detector
from reconad.cli import main
from reconad.data import list_images

pytestmark = pytest.mark.usefixtures("single_thread")


def _train_args(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--dataset",
        "mvtec",
        "--root",
        str(root),
        "--category",
        "brick",
        "--out",
        str(out),
        "--image-size",
        "64",
        "--epochs",
        "2",
        "--quiet",
        *extra,
    ]


@pytest.fixture(scope="module")
def run(single_thread, tiny_mvtec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "run"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        rc = main(_train_args(tiny_mvtec, out))
    assert rc == 0
    assert "trained hfr" in stdout.getvalue() and "saved to" in stdout.getvalue()
    return out


def _history(run_dir: Path) -> dict:
    return json.loads((run_dir / "model" / "config.json").read_text())["history"]


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


# ------------------------------------------------------------------- commands


def test_train_writes_a_run_directory(run, tiny_mvtec):
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "checkpoints" / "last.safetensors").is_file()
    info = json.loads((run / "run.json").read_text())
    assert info["model"] == "hfr" and info["train_images"] == 16
    assert info["data"]["dataset"] == "mvtec" and info["data"]["category"] == "brick"
    assert Path(info["data"]["root"]) == tiny_mvtec.resolve()
    cfg = json.loads((run / "model" / "config.json").read_text())
    assert cfg["detector"]["image_size"] == 64
    assert cfg["train_config"]["epochs"] == 2 and cfg["train_config"]["progress"] is False
    assert _history(run)["epochs_run"] == 2


def test_test_command_writes_metrics(run, tiny_mvtec, capsys):
    assert main(["test", str(run), "--heatmaps", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "image_auroc" in out and "metrics.json" in out
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("image_auroc", "pixel_auroc", "pro"):
        assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["n_test"] == 8 and metrics["n_anomalous"] == 4
    assert metrics["dataset"] == "mvtec" and metrics["category"] == "brick"
    rows = _rows(run / "scores.csv")
    assert rows[0] == ["path", "score", "p_value", "label", "predicted"] and len(rows) == 9
    # The scores are the saved model's scores of the test images.
    det = Detector.load(run / "model")
    expected = det.decision_function([r[0] for r in rows[1:]])
    # float32 sums in another batch order differ by a few ulps, more on some CPUs than others
    np.testing.assert_allclose([float(r[1]) for r in rows[1:]], expected, rtol=1e-5, atol=1e-6)
    assert all(0.0 < float(r[2]) <= 1.0 for r in rows[1:])
    assert [int(r[3]) for r in rows[1:]] == [0] * 4 + [1] * 4
    assert 2 <= len(list((run / "heatmaps").glob("*.png"))) <= 4


def test_predict_command_writes_scores_and_one_png_per_image(run, tiny_mvtec, tmp_path, capsys):
    good = tiny_mvtec / "brick" / "test" / "good"
    hole = list_images(tiny_mvtec / "brick" / "test" / "hole")[0]
    out = tmp_path / "pred"
    assert main(["predict", str(run), str(good), str(hole), "--out", str(out), "--quiet"]) == 0
    assert "scores.csv" in capsys.readouterr().out
    rows = _rows(out / "scores.csv")
    assert rows[0] == ["path", "score", "p_value", "label"]
    files = list_images(good) + [hole]
    assert [Path(r[0]) for r in rows[1:]] == files
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == len(files)
    det = Detector.load(run / "model")
    scores = np.array([float(r[1]) for r in rows[1:]])
    np.testing.assert_allclose(scores, det.decision_function(files), rtol=1e-5, atol=1e-6)
    assert [int(r[3]) for r in rows[1:]] == [int(s > det.threshold_) for s in scores]


def test_train_resume_continues_from_the_checkpoint(run, tiny_mvtec, tmp_path, capsys):
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = _history(run)
    # Another seed: a restart would redo epochs 1-2 with other losses; a resume keeps them.
    # (argparse keeps the last --epochs: 4.)
    assert main(_train_args(tiny_mvtec, copy, "--resume", "--seed", "1", "--epochs", "4")) == 0
    assert "4 epochs" in capsys.readouterr().out
    after = _history(copy)
    assert after["epochs_run"] == 4 and len(after["train_loss"]) == 4
    assert after["train_loss"][:2] == before["train_loss"]
    assert json.loads((copy / "checkpoints" / "last.json").read_text())["epoch"] == 3


# --------------------------------------------------------------------- errors


def _broken_root(tmp_path: Path, tiny_mvtec: Path, kind: str) -> Path:
    root = tmp_path / "data"
    good = root / "brick" / "train" / "good"
    if kind == "empty":
        good.mkdir(parents=True)
    else:
        shutil.copytree(tiny_mvtec / "brick" / "train" / "good", good)
        if kind == "unreadable":
            (good / "zz_broken.png").write_bytes(b"\x00garbage, not a PNG" * 20)
    return root


@pytest.mark.parametrize(
    "case, extra, message",
    [
        ("missing-root", [], "dataset root not found"),
        ("unreadable", [], "cannot read image"),
        ("empty", [], "no training images"),
        ("ok", ["--category", "carpet"], "category 'carpet' not found"),
        ("ok", ["--model", "nosuchmodel"], "unknown model"),
        ("ok", ["--backbone", "vgg16"], "unknown backbone"),
        ("ok", ["--set", "bogus=1"], "unknown option"),
        ("ok", ["--set", "score=median"], "unknown score"),
        ("ok", ["--set", "width"], "KEY=VALUE"),
        # Values of the wrong type are refused by name, not with a TypeError traceback.
        ("ok", ["--set", "epochs=abc"], "epochs must be an integer"),
        ("ok", ["--set", "lr=abc"], "lr must be a number"),
        ("ok", ["--set", "seed=abc"], "seed must be an integer"),
        ("ok", ["--set", "width=abc"], "width must be an integer"),
        ("ok", ["--set", "topk_ratio=abc"], "topk_ratio must be a number"),
        ("ok", ["--set", "level_weights=abc"], "level_weights"),
    ],
)
def test_train_errors_are_one_line_without_traceback(tmp_path, tiny_mvtec, capsys, case, extra, message):
    root = tmp_path / "nowhere" if case == "missing-root" else _broken_root(tmp_path, tiny_mvtec, case)
    rc = main(_train_args(root, tmp_path / "run") + extra)
    captured = capsys.readouterr()
    assert rc != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("reconad: error:") and message in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out


@pytest.mark.parametrize("case", ["no-run", "not-a-run", "missing-image", "root-without-dataset"])
def test_test_and_predict_errors_are_one_line(run, tmp_path, capsys, case):
    if case == "root-without-dataset":  # was silently ignored: the run's own data was used
        argv = ["test", str(run), "--root", str(tmp_path)]
    elif case == "no-run":
        argv = ["test", str(tmp_path / "nope")]
    elif case == "not-a-run":
        (tmp_path / "empty").mkdir()
        argv = ["test", str(tmp_path / "empty")]
    else:
        argv = ["predict", str(run), str(tmp_path / "missing.png"), "--out", str(tmp_path / "p")]
    rc = main(argv)
    captured = capsys.readouterr()
    assert rc != 0
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reconad: error:"), captured.err
    assert "Traceback" not in captured.err + captured.out


# ---------------------------------------------------------------- entry points


def _env() -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1")


def test_python_dash_m_help_and_console_script():
    proc = subprocess.run(
        [sys.executable, "-m", "reconad", "--help"], capture_output=True, text=True, timeout=120, env=_env()
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("train", "test", "predict", "benchmark"):
        assert command in proc.stdout
    script = Path(sys.executable).parent / "reconad"
    assert script.is_file() and os.access(script, os.X_OK)
    proc = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 0 and proc.stdout.strip().startswith("reconad "), proc.stderr


def test_error_from_a_real_process_is_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "reconad", *_train_args(tmp_path / "nowhere", tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"reconad: error: dataset root not found: {tmp_path / 'nowhere'}"]
    assert proc.stdout == ""


def test_bad_labelled_anomaly_options_are_one_line_errors(tiny_mvtec, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--labelled-anomalies", str(empty)], f"--labelled-anomalies: no images found in {empty}"),
        (["--labelled-anomalies", str(tmp_path / "absent")], "no such folder"),
        (["--labelled-fraction", "0.5"], "magnetic-tile data only"),
    ]
    for extra, message in cases:
        assert main(_train_args(tiny_mvtec, tmp_path / "run", *extra)) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "argv, flag, hint",
    [
        (["--protocol", "localization", "--classes", "3"], "--classes", "one-class"),
        (["--protocol", "localization", "--seeds", "3"], "--seeds", "one-class"),
        (["--protocol", "speed", "--categories", "brick"], "--categories", "calibration"),
        (["--protocol", "one-class", "--dataset", "digits", "--labelled-fraction", "0.1"], "--labelled-fraction", ""),
        (["--protocol", "tabular", "--data-root", "x", "--model", "ae"], "--model", "give --models"),
        (["--protocol", "hyperspectral", "--image-size", "64"], "--image-size", "speed"),
    ],
)
def test_benchmark_refuses_a_flag_its_protocol_does_not_read(tmp_path, capsys, argv, flag, hint):
    """A flag the chosen protocol would drop is a one-line error naming it, before any work."""
    assert main(["benchmark", *argv, "--out", str(tmp_path / "o"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"reconad: error: {flag} does not apply to the") and hint in err and "\n" not in err
    assert not (tmp_path / "o").exists()
