"""`reconad predict` as a stream (reconad.streaming): unreadable images listed and skipped,
``--resume`` after an interruption gives the uninterrupted file, shards under torchrun
join into the single-process file, and a failing rank fails the command."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reconad import Detector
from reconad.cli import main
from reconad.streaming import complete_rows, shard_bounds

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def run(single_thread, tmp_path_factory) -> Path:
    """A run directory holding a small AE (32 px), enough for predict."""
    rng = np.random.default_rng(0)
    det = Detector("ae", image_size=32, epochs=1, seed=0, progress=False).fit(
        (0.4 + 0.2 * rng.random((12, 32, 32))).astype(np.float32)
    )
    out = tmp_path_factory.mktemp("stream") / "run"
    det.save(out / "model")
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """50 small PNGs, with an unreadable file in the middle (by name order)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for i in range(50):
        Image.fromarray((rng.random((40, 48)) * 255).astype(np.uint8)).save(root / f"{i:03d}.png")
    (root / "024b.png").write_bytes(b"this is not a png")
    return root


def _predict(run: Path, folder: Path, out: Path, *extra: str) -> int:
    return main(["predict", str(run), str(folder), "--out", str(out), "--quiet", *extra])


def test_an_unreadable_image_is_listed_and_scoring_goes_on(run, folder, tmp_path, capsys):
    assert _predict(run, folder, tmp_path / "p") == 0
    scores = complete_rows(tmp_path / "p" / "scores.csv")
    errors = complete_rows(tmp_path / "p" / "errors.csv")
    assert len(scores) == 50 and [r[0] for r in errors] == [str(folder / "024b.png")]
    assert "cannot read image" in errors[0][1]
    assert "1 image(s) could not be read" in capsys.readouterr().err
    assert len(list((tmp_path / "p").glob("*.png"))) == 50  # one overlay per scored image


def test_overlays_flagged_draws_the_flagged_images_only_and_none_draws_none(run, folder, tmp_path, capsys):
    rng = np.random.default_rng(3)
    train = (rng.integers(120, 136, size=(200, 16, 16)) / 255).astype(np.float32)
    flat = Detector("ae", image_size=16, epochs=2, seed=0, progress=False).fit(train)
    flat.save(tmp_path / "flat" / "model")
    mixed = tmp_path / "mixed"  # training images (most pass), and noise the model flags
    mixed.mkdir()
    for i in range(6):
        Image.fromarray(np.round(train[i] * 255).astype(np.uint8)).save(mixed / f"like{i}.png")
        Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(mixed / f"noise{i}.png")
    assert _predict(tmp_path / "flat", mixed, tmp_path / "f", "--overlays", "flagged") == 0
    rows = complete_rows(tmp_path / "f" / "scores.csv")
    flagged = {Path(r[0]).stem for r in rows if r[3] == "1"}
    assert 0 < len(flagged) < len(rows)  # both kinds, so the choice is visible
    drawn = {p.stem.split("_", 1)[1] for p in (tmp_path / "f").glob("*.png")}
    assert drawn == flagged
    assert _predict(run, folder, tmp_path / "n", "--overlays", "none") == 0
    assert len(complete_rows(tmp_path / "n" / "scores.csv")) == 50 and not list((tmp_path / "n").glob("*.png"))
    capsys.readouterr()
    assert _predict(run, folder, tmp_path / "n", "--overlays", "all", "--resume") == 2  # another job
    err = capsys.readouterr().err
    assert "another --overlays" in err and len(err.strip().splitlines()) == 1


def test_strict_stops_at_the_unreadable_image_with_one_line(run, folder, tmp_path, capsys):
    assert _predict(run, folder, tmp_path / "p", "--strict") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "024b.png" in err[0]


@pytest.mark.parametrize("cut", [0.2, 0.55, 0.97])
def test_resume_after_an_interruption_gives_the_uninterrupted_files(run, folder, tmp_path, cut):
    full = tmp_path / "full"
    assert _predict(run, folder, full) == 0
    part = tmp_path / "part"
    shutil.copytree(full, part)
    data = (full / "scores.csv").read_bytes()
    (part / "scores.csv").write_bytes(data[: int(len(data) * cut)])  # killed mid-line
    if cut < 0.5:
        (part / "errors.csv").unlink()  # killed before the unreadable image was reached
    assert _predict(run, folder, part, "--resume") == 0
    assert (part / "scores.csv").read_bytes() == data
    assert (part / "errors.csv").read_bytes() == (full / "errors.csv").read_bytes()


def test_without_resume_an_earlier_output_is_replaced_not_extended(run, folder, tmp_path):
    out = tmp_path / "p"
    assert _predict(run, folder, out) == 0
    assert _predict(run, folder, out) == 0
    assert len(complete_rows(out / "scores.csv")) == 50


def test_a_repeated_input_is_scored_as_often_as_given_even_on_resume(run, folder, tmp_path):
    one = str(folder / "000.png")
    out = tmp_path / "p"
    assert main(["predict", str(run), one, one, one, "--out", str(out), "--quiet"]) == 0
    full = (out / "scores.csv").read_bytes()
    lines = full.decode().splitlines(keepends=True)
    (out / "scores.csv").write_text("".join(lines[:2]))
    assert main(["predict", str(run), one, one, one, "--out", str(out), "--quiet", "--resume"]) == 0
    assert (out / "scores.csv").read_bytes() == full


def test_a_cut_last_line_is_dropped_from_the_file(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("path,score\na.png,1.0\nb.png,0.")
    assert complete_rows(path) == [["a.png", "1.0"]]
    assert path.read_text() == "path,score\na.png,1.0\n"


@pytest.mark.parametrize("n, world", [(50, 2), (7, 3), (2, 5), (0, 2)])
def test_shards_cover_the_input_once_in_order(n, world):
    bounds = [shard_bounds(n, r, world) for r in range(world)]
    assert bounds[0][0] == 0 and bounds[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert max(e - s for s, e in bounds) - min(e - s for s, e in bounds) <= 1


def _torchrun(run: Path, inputs: list[str], out: Path, *extra: str, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(nproc)]
    cmd += ["-m", "reconad", "predict", str(run), *inputs, "--out", str(out), "--quiet", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)


def test_two_gloo_ranks_give_the_single_process_files(run, folder, tmp_path):
    assert _predict(run, folder, tmp_path / "single") == 0
    done = _torchrun(run, [str(folder)], tmp_path / "dist")
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("scores.csv", "errors.csv"):
        assert (tmp_path / "dist" / name).read_bytes() == (tmp_path / "single" / name).read_bytes()
    assert done.stdout.count("scored 50 image(s)") == 1  # rank 0 reports for both


def test_more_ranks_than_images_leave_idle_ranks_and_one_file(run, folder, tmp_path):
    inputs = [str(folder / "000.png"), str(folder / "001.png")]
    done = _torchrun(run, inputs, tmp_path / "dist", nproc=3)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [r[0] for r in complete_rows(tmp_path / "dist" / "scores.csv")] == inputs


def test_a_failing_rank_fails_the_whole_command_with_its_error(run, folder, tmp_path):
    done = _torchrun(run, [str(folder)], tmp_path / "dist", "--strict")
    assert done.returncode != 0
    assert "reconad: error (rank 1): cannot read image" in done.stderr and "024b.png" in done.stderr
    # the other rank stops with one line of its own, not the collective's traceback
    assert "reconad: error (rank 0): stopped: 1 other rank(s) failed" in done.stderr
    assert "[rank0]: Traceback" not in done.stderr


def test_test_writes_scores_as_it_goes_and_keeps_maps_on_disk(tiny_mvtec, tmp_path):
    from reconad.data.spec import DataSpec
    from reconad.runs import evaluate_run, load_run, score_test_split, train_run

    spec = DataSpec("mvtec", str(tiny_mvtec), "brick", image_size=32)
    train_run(spec, tmp_path / "run", model="ae", epochs=1, progress=False)
    det, _ = load_run(tmp_path / "run")
    det._batch_size = lambda model: 2  # type: ignore[method-assign]  # several batches of the 8 test images
    run = tmp_path / "run"
    (run / "scores.csv").write_text("an earlier test's scores\n")
    flushed, kept = [], []

    from torch.utils.data import Dataset

    class Watch(Dataset):
        def __init__(self, test):
            self.test = test

        def __len__(self):
            return len(self.test)

        def __getitem__(self, i):  # rows of earlier batches are already on disk when a new one is read,
            # in a temporary file beside scores.csv, which stays the earlier one until the pass is done
            tmp = [p for p in run.iterdir() if p.name.startswith(".scores.csv.")]
            flushed.append(tmp[0].read_bytes().count(b"\n") - 1 if tmp else 0)
            kept.append((run / "scores.csv").read_text() == "an earlier test's scores\n")
            return self.test[i]

    tp = score_test_split(det.pipeline(), Watch(spec.build("test")), tmp_path / "run" / "scores.csv", tmp_path / "run")
    assert isinstance(tp.maps, np.memmap) and isinstance(tp.masks, np.memmap)
    assert max(flushed) > 0  # the rows grew on disk during the pass, not only at its end
    assert all(kept)  # a kill during the pass leaves the earlier scores.csv whole
    assert len(complete_rows(tmp_path / "run" / "scores.csv")) == len(tp.scores) == 8
    metrics = evaluate_run(tmp_path / "run")
    assert 0 <= metrics["pixel_auroc"] <= 1
    assert not [p for p in (tmp_path / "run").iterdir() if p.name.startswith(".test-")]  # nothing left behind


def test_resume_under_torchrun_finishes_the_unfinished_shard(run, folder, tmp_path):
    assert _torchrun(run, [str(folder)], tmp_path / "dist").returncode == 0
    full = (tmp_path / "dist" / "scores.csv").read_bytes()
    part = tmp_path / "dist" / "parts" / "scores-00001-of-00002.csv"
    data = part.read_bytes()
    part.write_bytes(data[: len(data) // 3])  # rank 1 was killed a third of the way in
    (tmp_path / "dist" / "scores.csv").unlink()
    done = _torchrun(run, [str(folder)], tmp_path / "dist", "--resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "dist" / "scores.csv").read_bytes() == full
    assert "kept from before" in done.stdout


def test_overlays_settings_are_checked_in_one_line():
    from reconad.errors import ConfigError
    from reconad.predict_job import check_overlays

    check_overlays("flagged", 1.0)
    with pytest.raises(ConfigError, match="no threshold"):
        check_overlays("flagged", None)
    with pytest.raises(ConfigError, match="choose one of all, flagged, none"):
        check_overlays("some", 1.0)
