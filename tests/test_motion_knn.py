"""motion_knn, the frame model with motion: causal scoring (a stream gives a whole clip's
scores), motion finds what appearance misses, persistence, the video protocol, `reconad
predict` and `reconad watch` on a folder that grows, and its refusals."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.motion_toy import SIZE, motion_toy
from reconad.cli import main
from reconad.data.video import ClipWindows, clip_holdout, frames_tensor, load_ucsd_split, write_moving_shapes
from reconad.detector import Detector
from reconad.errors import ConfigError
from reconad.frame_stream import watch
from reconad.metrics import image_auroc
from reconad.models import build_model

pytestmark = pytest.mark.usefixtures("single_thread")


def _frames(clip) -> torch.Tensor:
    return frames_tensor(clip.frames)


@pytest.fixture(scope="module")
def toy():
    return motion_toy()


@pytest.fixture(scope="module")
def fitted(toy):
    train, _ = toy
    det = Detector("motion_knn", bank_size=2000, progress=False)
    det.fit(ClipWindows(train, 8, 4))
    return det


def _auroc(train, test, **options) -> float:
    model = build_model("motion_knn", bank_size=2000, input_shape=[1, 8, *SIZE], **options)
    model.on_fit_end(ClipWindows(train, 8, 4), None, torch.device("cpu"))
    return image_auroc(test.labels, model.score_sequence(_frames(test))[0].numpy())


def test_motion_finds_the_rushing_block_that_appearance_misses(toy):
    train, test = toy
    alone, with_motion = _auroc(train, test, motion_weight=0.0), _auroc(train, test)
    assert with_motion > 0.85 and with_motion > alone + 0.08, (alone, with_motion)


def test_a_stream_in_pieces_scores_like_the_whole_clip_and_never_looks_ahead(fitted, toy):
    model = fitted.model_
    frames = _frames(toy[1])
    whole, maps, _ = model.score_sequence(frames)
    state, parts, part_maps = model.stream(), [], []
    for piece in frames.split(7):
        s, m, state = model.score_sequence(piece, state)
        parts.append(s)
        part_maps.append(m)
    assert torch.allclose(torch.cat(parts), whole, atol=1e-4)
    assert torch.allclose(torch.cat(part_maps), maps, atol=1e-4)
    first = model.score_sequence(frames[:25])[0]  # the first 25 frames alone: what came later is not used
    assert torch.allclose(first, whole[:25], atol=1e-4)
    assert maps.shape == (60, *SIZE)


def test_saved_and_loaded_it_scores_the_same(fitted, toy, tmp_path):
    fitted.save(tmp_path / "m")
    again = Detector.load(tmp_path / "m")
    frames = _frames(toy[1])
    assert torch.allclose(again.model_.score_sequence(frames)[0], fitted.model_.score_sequence(frames)[0])
    assert again.model_.bank.shape == fitted.model_.bank.shape


@pytest.mark.parametrize(
    "option", [{"offsets": [0]}, {"offsets": []}, {"smooth": 2}, {"ema": 1.0}, {"motion_weight": -1}, {"bank_size": 0}]
)
def test_bad_options_are_refused(option):
    with pytest.raises(ConfigError):
        build_model("motion_knn", **option)


def test_it_takes_video_only(fitted):
    with pytest.raises(ConfigError, match="video|clips"):
        Detector("motion_knn").fit(np.zeros((20, 4), np.float32))


def test_held_out_windows_are_whole_clips(toy):
    windows = ClipWindows(toy[0], 8, 4)
    train, held = clip_holdout(windows, 0.1, 0)
    train_clips = {windows.windows[i][0] for i in train.indices}
    held_clips = {windows.windows[i][0] for i in held.indices}
    assert held_clips and not train_clips & held_clips
    assert len(train.indices) + len(held.indices) == len(windows)
    assert clip_holdout(ClipWindows(toy[0][:1], 8, 4), 0.1, 0) is None  # one clip: nothing to hold out whole


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory):
    root = write_moving_shapes(tmp_path_factory.mktemp("shapes"), n_train=3, n_test=2, n_frames=32, size=(48, 64))
    out = tmp_path_factory.mktemp("bench")
    argv = ["benchmark", "video", "--root", str(root), "--model", "motion_knn", "--out", str(out)]
    assert main([*argv, "--frame-size", "48,64", "--set", "bank_size=2000", "--quiet"]) == 0
    return root, out


def test_video_protocol_and_predict(shapes_run, tmp_path):
    root, out = shapes_run
    row = json.loads((out / "results.json").read_text())["rows"][0]
    assert row["frame_auroc_global"] > 0.85 and row["pixel_auroc"] > 0.85
    assert "stream" in row["undefined"]["frame_auroc_centre"]
    assert (
        main(["predict", str(out / "motion_knn"), str(root / "testing/frames/01"), "--out", str(tmp_path / "p")]) == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "p" / "scores.csv")))
    assert len(rows) == 32


def _copy_frame(src, dst) -> None:
    Image.open(src).save(dst)


def test_watch_scores_a_growing_folder_like_predict(shapes_run, tmp_path):
    """Frames are added one by one as the watcher reports the previous one (events, no clock);
    the rows equal predict's on the whole clip."""
    root, out = shapes_run
    source = sorted((root / "testing/frames/01").iterdir())
    live = tmp_path / "live"
    live.mkdir()
    _copy_frame(source[0], live / source[0].name)
    seen: list[float] = []

    def on_frame(n, path, score, flagged):
        seen.append(score)
        if n < len(source):
            _copy_frame(source[n], live / source[n].name)

    result = watch(out / "motion_knn", live, tmp_path / "w", poll=0.01, max_frames=len(source), on_frame=on_frame)
    assert result.frames == len(source) == len(seen)
    assert (
        main(["predict", str(out / "motion_knn"), str(root / "testing/frames/01"), "--out", str(tmp_path / "p")]) == 0
    )
    expected = [float(r["score"]) for r in csv.DictReader(open(tmp_path / "p" / "scores.csv"))]
    np.testing.assert_allclose(seen, expected, atol=1e-4)
    record = json.loads((tmp_path / "w" / "stream.json").read_text())
    assert record["model"] == "motion_knn" and len(record["fingerprint"]) == 64
    with pytest.raises(ConfigError, match="already holds"):
        watch(out / "motion_knn", live, tmp_path / "w", idle_exit=0)


def test_watch_lists_a_broken_frame_and_goes_on(shapes_run, tmp_path, capsys):
    root, out = shapes_run
    live = tmp_path / "live"
    live.mkdir()
    for p in sorted((root / "testing/frames/02").iterdir())[:4]:
        _copy_frame(p, live / p.name)
    (live / "002.png").write_bytes(b"not a png")
    argv = ["watch", str(out / "motion_knn"), str(live), "--out", str(tmp_path / "w"), "--idle-exit", "0"]
    assert main([*argv, "--poll", "0.01", "--quiet"]) == 0
    errors = list(csv.DictReader(open(tmp_path / "w" / "errors.csv")))
    assert [e["path"].rsplit("/", 1)[-1] for e in errors] == ["002.png"]
    assert len(list(csv.DictReader(open(tmp_path / "w" / "scores.csv")))) == 3
    assert "1 frame(s) could not be read" in capsys.readouterr().err


def test_watch_refuses_a_clip_model_in_one_line(tmp_path, capsys):
    root = write_moving_shapes(tmp_path / "s", n_train=2, n_test=1, n_frames=16, size=(24, 32))
    det = Detector("ae", width=4, epochs=1, progress=False)
    with pytest.warns(UserWarning, match="no held-out"):  # two short clips: too few windows to hold out
        det.fit(ClipWindows(load_ucsd_split(root, "training", (24, 32)), 8, 4))
    det.save(tmp_path / "run" / "model")
    assert main(["watch", str(tmp_path / "run"), str(root / "testing/frames/01"), "--out", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "frame model" in err[0]


def test_watch_reads_a_video_file_frame_by_frame(shapes_run, tmp_path):
    import av  # the video extra, which `make test` installs

    root, out = shapes_run
    frames = sorted((root / "testing/frames/02").iterdir())
    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for f in frames:
            rgb = np.asarray(Image.open(f).convert("RGB"))
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    result = watch(out / "motion_knn", path, tmp_path / "w")
    rows = list(csv.DictReader(open(tmp_path / "w" / "scores.csv")))
    assert result.frames == len(rows) == len(frames)
    assert rows[0]["path"].endswith("clip.mp4#0") and rows[-1]["frame"] == str(len(frames))


def test_serve_scores_each_stream_frame_by_frame(shapes_run, tmp_path):
    """Two streams interleaved keep their own state; a stream's scores equal the clip's; ending
    a stream starts it again; a broken frame, an unknown model and two workers are refused."""
    import httpx

    from helpers.serve import server_thread
    from reconad.data.video import load_clip
    from reconad.serve.app import create_app
    from reconad.serve.config import ServeConfig, ServedRun
    from reconad.serve.streams import load_stream_model

    root, out = shapes_run
    run = ServedRun("video", str(out / "motion_knn"))
    clip = load_clip(root / "testing/frames/01", (48, 64), 1)
    expected = Detector.load(out / "motion_knn" / "model").model_.score_sequence(_frames(clip)[:8])[0].numpy()
    files = [{"frame": (f"{i}.png", open(p, "rb").read(), "image/png")} for i, p in enumerate(clip.paths[:8])]
    app = create_app(ServeConfig(runs=[run], db=f"sqlite:///{tmp_path / 'r.db'}", threads=1))
    with server_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        assert "video" in c.get("/readyz").json()["models"]
        got = []
        for i, f in enumerate(files):
            got.append(c.post("/v1/streams/video/cam1/frames", files=f).json())
            if i == 3:  # another stream in between starts at frame 1 and leaves cam1's state alone
                assert c.post("/v1/streams/video/cam2/frames", files=files[0]).json()["frame"] == 1
        assert [g["frame"] for g in got] == list(range(1, 9))
        np.testing.assert_allclose([g["score"] for g in got], expected, atol=1e-4)
        assert c.delete("/v1/streams/video/cam1").json()["ended"] is True
        again = c.post("/v1/streams/video/cam1/frames", files=files[0]).json()
        assert again["frame"] == 1 and again["score"] == pytest.approx(got[0]["score"], abs=1e-4)
        bad = c.post("/v1/streams/video/cam1/frames", files={"frame": ("x.png", b"not an image", "image/png")})
        assert bad.status_code == 400 and "not a readable image" in bad.json()["detail"]
        assert c.post("/v1/streams/nope/cam1/frames", files=files[0]).status_code == 404
    with pytest.raises(ConfigError, match="--workers 1"):
        load_stream_model(run, workers=2, threads=1)
