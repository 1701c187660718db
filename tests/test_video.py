"""Video clips: UCSD-layout loaders, labels (.m, ped2.mat, CSV), masks, windows, the 3-D
models, the video protocol end to end and ``reconad predict`` on clip folders."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image

from reconad.cli import main
from reconad.data.records import ClipBatch
from reconad.data.video import (
    ClipWindows,
    find_clips,
    load_clip,
    load_ucsd_split,
    parse_gt_frame_list,
    read_gt_mat,
    write_moving_shapes,
)
from reconad.errors import ConfigError, DataError
from reconad.models import build_model

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """The moving-shapes fixture in the UCSD layout: 3 training and 2 test clips of 32 frames."""
    return write_moving_shapes(tmp_path_factory.mktemp("shapes"), n_train=3, n_test=2, n_frames=32, size=(24, 32))


def test_ucsd_layout_loads_frames_labels_and_masks(shapes):
    train = load_ucsd_split(shapes, "training", (24, 32))
    test = load_ucsd_split(shapes, "testing", (24, 32))
    assert [c.name for c in train] == ["01", "02", "03"] and len(test) == 2
    assert train[0].frames.shape == (32, 24, 32, 1) and train[0].labels is None
    entries = parse_gt_frame_list(shapes / "testing" / "Shapes.m")
    for clip, ranges in zip(test, entries):
        (a, b) = ranges[0]
        assert clip.labels is not None and clip.labels.sum() == b - a + 1
        assert clip.labels[a - 1] == 1 and (a < 2 or clip.labels[a - 2] == 0)
        assert clip.masks is not None and clip.masks.shape == (32, 24, 32)
        assert clip.masks[clip.labels == 1].any(axis=(1, 2)).all() and not clip.masks[clip.labels == 0].any()


def test_gt_frame_list_parses_several_ranges_and_single_frames(tmp_path):
    m = tmp_path / "gt.m"
    m.write_text(
        "TestVideoFile = {};\nTestVideoFile{end+1}.gt_frame = [5:9, 20:22];\nTestVideoFile{end+1}.gt_frame = [7];\n"
    )
    assert parse_gt_frame_list(m) == [[(5, 9), (20, 22)], [(7, 7)]]


def test_ped2_mat_and_csv_labels(shapes, tmp_path):
    from scipy.io import savemat

    gt = np.empty((1, 2), dtype=object)
    gt[0, 0], gt[0, 1] = np.array([[3], [10]]), np.array([[1, 20], [4, 32]])
    savemat(tmp_path / "ped2.mat", {"gt": gt})
    assert read_gt_mat(tmp_path / "ped2.mat") == [[(3, 10)], [(1, 4), (20, 32)]]
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(shapes, root)
    for k, name in enumerate(("01", "02")):
        with open(root / "testing" / "frames" / f"{name}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["frame", "label"])
            w.writerows([[f, int(f > 16 + k)] for f in range(1, 33)])
    test = load_ucsd_split(root, "testing", (24, 32), labels="csv")
    assert test[0].labels is not None and test[0].labels.sum() == 16 and test[1].labels.sum() == 15


def test_plain_frame_folders_in_number_order(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in (1, 2, 10):  # 10 must come after 2
        Image.fromarray(np.full((20, 30), 10 * i, np.uint8)).save(folder / f"frame{i}.tif")
    clip = load_clip(folder, (10, 15))
    assert clip.frames[:, 0, 0, 0].tolist() == [10, 20, 100]
    assert find_clips([str(tmp_path)]) == [folder]


def test_video_file_through_pyav(tmp_path):
    av = pytest.importorskip("av", reason="PyAV not installed (pip install 'reconad[video]'): video files untested")
    path = tmp_path / "tiny.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((24, 32, 3), 40 * i, np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    clip = load_clip(path, (12, 16))
    assert len(clip) == 6 and clip.frames.shape[1:] == (12, 16, 1)
    assert clip.frames[-1].mean() > clip.frames[0].mean() + 100


def test_frames_of_different_sizes_name_the_file(tmp_path):
    folder = tmp_path / "clip"
    folder.mkdir()
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(folder / "000.png")
    Image.fromarray(np.zeros((22, 30), np.uint8)).save(folder / "001.png")
    with pytest.raises(DataError, match=r"001\.png: frame is 30x22, but 000\.png"):
        load_clip(folder, (10, 15))


def test_label_list_beyond_the_clip_names_the_file(shapes, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(shapes, root)
    (root / "testing" / "Shapes.m").write_text(
        "TestVideoFile{end+1}.gt_frame = [3:8];\nTestVideoFile{end+1}.gt_frame = [20:40];\n"
    )
    with pytest.raises(DataError, match=r"Shapes\.m: clip 02 has 32 frames, but its labels name frames 20:40"):
        load_ucsd_split(root, "testing", (24, 32))


def test_windows_cover_every_frame(shapes):
    clips = load_ucsd_split(shapes, "training", (24, 32))[:1]
    w = ClipWindows(clips, length=8, stride=5)
    starts = [s for _, s in w.windows]
    assert starts == [0, 5, 10, 15, 20, 24]  # the last window ends on frame 32
    item = w[len(w) - 1]
    assert item.frames.shape == (8, 1, 24, 32) and item.index.tolist() == list(range(24, 32))
    short = ClipWindows([clips[0]], length=40)
    assert short[0].index.tolist()[-1] == 31 and len(short) == 1


def test_3d_variants_score_every_frame():
    torch.manual_seed(0)
    x = ClipBatch.of(torch.rand(2, 8, 1, 24, 32))
    for name in ("memae", "ae"):
        model = build_model(name, input_shape=[1, 8, 24, 32], width=4).eval()
        out = model.predict_step(x)
        assert model.data_kind == "video" and out.scores.shape == (2,) and out.maps.shape == (2, 8, 24, 32)
        assert model.export_blocker() is not None
    assert build_model("memae", input_shape=[1, 8, 24, 32], width=4).memory.slots.shape[0] == 2000
    assert not hasattr(build_model("ae", input_shape=[1, 8, 24, 32], width=4), "memory")
    with pytest.raises(ConfigError, match="no video variant"):
        build_model("vae", input_shape=[1, 8, 24, 32])


def test_protocol_and_predict_end_to_end(shapes, tmp_path):
    """memae learns the moving shapes: the inserted anomalous frames score higher (AUROC > 0.9);
    then ``reconad predict`` on a clip folder writes per-frame scores and overlays."""
    out = tmp_path / "bench"
    argv = ["benchmark", "--protocol", "video", "--root", str(shapes), "--model", "memae", "--out", str(out)]
    argv += ["--set", "frame_size=[24,32]", "--set", "clip_length=8", "--set", "train_stride=2"]
    argv += ["--set", "test_stride=4", "--set", "width=4", "--epochs", "6", "--quiet"]
    assert main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    row = doc["rows"][0]
    assert doc["normalisation_default"] == "clip" and set(doc["normalisations"]) == {"clip", "global"}
    assert row["frame_auroc_clip"] > 0.9 and row["frame_auroc_global"] > 0.9
    assert row["pixel_auroc"] > 0.9 and row["frames_per_second"] > 0
    assert doc["published"]["rows"][0]["value"] == 0.941
    pred = tmp_path / "pred"
    clip_dir = shapes / "testing" / "frames" / "01"
    assert main(["predict", str(out / "memae"), str(clip_dir), "--out", str(pred)]) == 0
    rows = list(csv.DictReader(open(pred / "scores.csv")))
    assert len(rows) == 32 and rows[0]["clip"] == "01" and rows[0]["frame"] == "1"
    assert (pred / "01" / "0032.png").is_file()
