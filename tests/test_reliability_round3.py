"""Reliability, round 3: data paths that silently lost or mixed outputs.  One test (or a few)
per class of the issue, each failing without its fix: ``--overwrite`` and the results
database, ``predict --resume`` into another job's folder, overlays named by global index
under torchrun, clips of one name, int8's verdict rates, DataFrame columns by name, and a
tiled predict of thin images."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reconad import Detector
from reconad.cli import main
from reconad.errors import DataError

pytestmark = pytest.mark.usefixtures("single_thread")


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def _train(root: Path, out: Path, *extra: str) -> Path:
    args = ["train", "--model", "ae", "--root", str(root), "--category", "brick", "--out", str(out)]
    assert main([*args, "--image-size", "32", "--epochs", "1", "--quiet", "--device", "cpu", *extra]) == 0
    return out


@pytest.fixture(scope="module")
def runs(single_thread: None, tiny_mvtec: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two tiny autoencoder runs: whole images and 32-px tiles."""
    base = tmp_path_factory.mktemp("round3")
    return {
        "ae": _train(tiny_mvtec, base / "ae"),
        "tiled": _train(tiny_mvtec, base / "tiled", "--tile-size", "32"),
    }


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------ 1. --overwrite


def test_overwrite_keeps_the_results_database_and_predictions_and_says_what_it_replaces(
    runs: dict[str, Path], tiny_mvtec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(runs["ae"], run)
    with sqlite3.connect(run / "results.db") as db:  # what `reconad serve RUN` appends by default
        db.execute("create table reconad_results (id integer)")
        db.execute("insert into reconad_results values (7)")
    (run / "predictions").mkdir()
    (run / "predictions" / "scores.csv").write_text("path,score\nx.png,0.5\n")
    old_model = (run / "model" / "model.safetensors").read_bytes()
    args = ["train", "--model", "ae", "--root", str(tiny_mvtec), "--category", "brick", "--out", str(run)]
    with pytest.warns(UserWarning, match="--overwrite replaces") as said:
        code, err = _cli(
            [*args, "--image-size", "32", "--epochs", "1", "--quiet", "--seed", "1", "--overwrite"], capsys
        )
    assert code == 0, err
    text = " ".join(str(w.message) for w in said)
    assert "model" in text and "kept and carried into the new run: predictions, results.db" in text
    assert (run / "model" / "model.safetensors").read_bytes() != old_model  # the run itself was replaced
    with sqlite3.connect(run / "results.db") as db:
        assert db.execute("select id from reconad_results").fetchall() == [(7,)]
    assert (run / "predictions" / "scores.csv").read_text() == "path,score\nx.png,0.5\n"


# ------------------------------------------------------------------ 2. predict --resume


def _hole(tiny_mvtec: Path) -> Path:
    return tiny_mvtec / "brick" / "test" / "hole"


def _good(tiny_mvtec: Path) -> Path:
    return tiny_mvtec / "brick" / "test" / "good"


@pytest.mark.parametrize("other", ["another-run", "another-tiling", "another-input-list", "another-engine"])
def test_resume_into_another_jobs_output_is_refused_and_leaves_it_alone(
    other: str, runs: dict[str, Path], tiny_mvtec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p"
    first = ["predict", str(runs["ae"]), str(_good(tiny_mvtec)), "--out", str(out), "--quiet", "--engine", "torch"]
    assert _cli(first, capsys)[0] == 0
    before = (out / "scores.csv").read_bytes()
    second = {
        "another-run": ["predict", str(runs["tiled"]), str(_good(tiny_mvtec)), "--engine", "torch"],
        "another-tiling": [*first[:3], "--tile-size", "32", "--engine", "torch"],
        "another-input-list": ["predict", str(runs["ae"]), str(_hole(tiny_mvtec)), "--engine", "torch"],
        "another-engine": [*first[:3], "--engine", "onnx"],
    }[other]
    code, err = _cli([*second, "--out", str(out), "--quiet", "--resume"], capsys)
    assert code == 2 and len([line for line in err.splitlines() if line.startswith("reconad: error")]) == 1, err
    assert "Traceback" not in err
    assert "--resume continues only the job that wrote" in err and str(out) in err
    assert (out / "scores.csv").read_bytes() == before


def test_resume_with_the_same_folder_spelled_otherwise_adds_no_row(
    runs: dict[str, Path], tiny_mvtec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tiny_mvtec)
    out = tmp_path / "p"
    assert main(["predict", str(runs["ae"]), "brick/test/good", "--out", str(out), "--quiet"]) == 0
    rows = (out / "scores.csv").read_bytes()
    monkeypatch.chdir(tmp_path)  # another working folder, the same images by absolute path
    assert main(["predict", str(runs["ae"]), str(_good(tiny_mvtec)), "--out", str(out), "--quiet", "--resume"]) == 0
    assert (out / "scores.csv").read_bytes() == rows  # no image scored twice
    assert len(_rows(out / "scores.csv")) == len(list(_good(tiny_mvtec).glob("*.png")))


def _line(text: str, n: int, row: str) -> str:
    lines = text.split("\n")
    lines[n - 1] = row
    return "\n".join(lines)


DAMAGE = {
    "not-utf8": (lambda text: text.replace(",", ",\xff", 3), "is not UTF-8"),
    "cut-middle-row": (lambda text: _line(text, 2, "half-written"), "line 2 is damaged"),
    "score-not-a-number": (lambda text: _line(text, 3, "x.png,high,0.5,1"), "line 3 is damaged"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_resume_refuses_a_damaged_scores_csv_in_one_line(
    damage: str, runs: dict[str, Path], tiny_mvtec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p"
    argv = ["predict", str(runs["ae"]), str(_good(tiny_mvtec)), "--out", str(out), "--quiet"]
    assert _cli(argv, capsys)[0] == 0
    edit, phrase = DAMAGE[damage]
    data = edit((out / "scores.csv").read_text())
    (out / "scores.csv").write_bytes(data.encode("latin-1") if "\xff" in data else data.encode())
    code, err = _cli([*argv, "--resume"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert phrase in err and "scores.csv" in err


def test_resume_refuses_rows_without_a_record_of_the_job_that_wrote_them(
    runs: dict[str, Path], tiny_mvtec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "p"
    argv = ["predict", str(runs["ae"]), str(_good(tiny_mvtec)), "--out", str(out), "--quiet"]
    assert _cli(argv, capsys)[0] == 0
    doc = json.loads((out / "predict.json").read_text())
    del doc["job"]  # a folder written by an older predict
    (out / "predict.json").write_text(json.dumps(doc))
    code, err = _cli([*argv, "--resume"], capsys)
    assert code == 2 and "does not record the job" in err, err


# ------------------------------------------------------------------ 3. overlays by global index


def test_each_rank_names_its_overlays_by_the_global_input_index(
    runs: dict[str, Path], tiny_mvtec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two inputs of one file name in two folders, one per rank: two overlays, not one."""
    from reconad import streaming
    from reconad.inference import open_run

    files = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        files.append(Path(shutil.copy(sorted(_good(tiny_mvtec).glob("*.png"))[0], tmp_path / folder / "x.png")))
    out = tmp_path / "p"
    pipe = open_run(runs["ae"], "torch")
    monkeypatch.setattr(streaming, "_merge_shards", lambda out, rank, world, counts: counts)
    for rank in (0, 1):  # what each of two torchrun ranks does with its share
        monkeypatch.setattr(streaming, "_ranks", lambda r=rank: (r, 2))
        streaming.stream_predict(pipe, files, out, resume=True, show_progress=False)
    assert sorted(p.name for p in out.glob("*.png")) == ["0000_x.png", "0001_x.png"]


# ------------------------------------------------------------------ 4. clips of one name


def test_two_clips_of_one_name_each_keep_their_scores_and_overlays(tmp_path: Path, capsys: Any) -> None:
    from reconad.data.video import ClipWindows, load_ucsd_split, write_moving_shapes

    shapes = write_moving_shapes(tmp_path / "shapes", n_train=2, n_test=1, n_frames=16, size=(24, 32))
    train = ClipWindows(load_ucsd_split(shapes, "training", (24, 32)), length=8, stride=4)
    det = Detector("ae", width=4, epochs=1, progress=False, device="cpu", patience=None).fit(train)
    det.save(tmp_path / "run" / "model")
    clip = shapes / "testing" / "frames" / "01"
    for folder in ("a", "b"):
        shutil.copytree(clip, tmp_path / folder / "01")
    run = str(tmp_path / "run")
    assert main(["predict", run, str(clip), "--out", str(tmp_path / "one"), "--quiet"]) == 0
    both = [str(tmp_path / "a" / "01"), str(tmp_path / "b" / "01")]
    assert main(["predict", run, *both, "--out", str(tmp_path / "two"), "--quiet"]) == 0
    one, two = _rows(tmp_path / "one" / "scores.csv"), _rows(tmp_path / "two" / "scores.csv")
    assert [r["clip"] for r in two] == ["a/01"] * len(one) + ["b/01"] * len(one)
    for part in (two[: len(one)], two[len(one) :]):  # each clip scores as it does alone, none zeroed
        assert [r["score"] for r in part] == [r["score"] for r in one]
    assert (tmp_path / "two" / "a" / "01" / "0001.png").is_file() and (
        tmp_path / "two" / "b" / "01" / "0001.png"
    ).is_file()
    code, err = _cli(["predict", run, str(clip), "--out", str(tmp_path / "r"), "--resume"], capsys)
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1, err


# ------------------------------------------------------------------ 5. int8's verdicts


def _metrics(auroc: float, detection: float, false_alarm: float) -> dict[str, float | None]:
    return {
        "image_auroc": auroc,
        "pixel_auroc": auroc,
        "pro": auroc,
        "detection_rate": detection,
        "false_alarm_rate": false_alarm,
        "n_normal": 40.0,
        "n_anomalous": 40.0,
    }


def test_int8_with_the_float_ranking_but_other_verdicts_is_not_offered() -> None:
    """Every ranking metric kept, but int8 at its threshold finds no defect: not offered."""
    from reconad.quantize import _verdict

    offered, reason = _verdict(_metrics(0.9, 0.8, 0.05), _metrics(0.9, 0.0, 0.05))
    assert not offered and "detection_rate 0.800 -> 0.000" in reason
    offered, reason = _verdict(_metrics(0.9, 0.8, 0.05), _metrics(0.9, 0.8, 0.5))
    assert not offered and "false_alarm_rate" in reason
    assert _verdict(_metrics(0.9, 0.8, 0.05), _metrics(0.9, 0.775, 0.075))[0]  # one image of 40 each


# ------------------------------------------------------------------ 7. DataFrame columns by name


def test_dataframe_columns_are_matched_by_name_and_saved_with_the_model(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    df = pd.DataFrame(rng.normal(size=(60, 5)) * [1, 2, 3, 4, 5], columns=list("abcde")).astype("float32")
    det = Detector("ae", epochs=2, progress=False, device="cpu", patience=None, width=4).fit(df)
    assert det.feature_names_in_ == list("abcde")
    scores = det.decision_function(df)
    np.testing.assert_array_equal(det.decision_function(df[list("edcba")]), scores)
    for bad, phrase in ((df.rename(columns={"a": "z"}), "missing a; unknown z"), (df[list("abcd")], "missing e")):
        with pytest.raises(DataError, match=phrase) as info:
            det.decision_function(bad)
        assert "\n" not in str(info.value)
    det.save(tmp_path / "m")
    loaded = Detector.load(tmp_path / "m")
    assert loaded.feature_names_in_ == list("abcde")
    np.testing.assert_array_equal(loaded.decision_function(df[list("cabed")]), scores)
    np.testing.assert_array_equal(loaded.decision_function(df.to_numpy()), scores)  # arrays: by position


# ------------------------------------------------------------------ 8. thin images, tiled


def test_tiled_predict_scores_thin_and_one_pixel_images_with_true_overlays(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "in"
    folder.mkdir()
    shapes = {"a_thin.png": (3, 200), "b_one.png": (1, 1), "c_tall.png": (200, 3), "d_square.png": (64, 64)}
    for name, (h, w) in shapes.items():
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / name)
    out = tmp_path / "p"
    assert main(["predict", str(runs["tiled"]), str(folder), "--out", str(out), "--quiet"]) == 0
    assert [Path(r["path"]).name for r in _rows(out / "scores.csv")] == sorted(shapes)
    assert _rows(out / "errors.csv") == []
    for i, (name, (h, w)) in enumerate(sorted(shapes.items())):
        overlay = np.asarray(Image.open(out / f"{i:04d}_{Path(name).stem}.png"))
        assert overlay.shape == (h, 2 * w + 4, 3), name  # the image, a gap, its overlay
        original = np.asarray(Image.open(folder / name))
        np.testing.assert_array_equal(overlay[:, :w], original)  # the left panel is the image itself
