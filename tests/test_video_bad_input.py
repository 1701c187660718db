"""Bad video input is refused in one line naming the file, exit 2, no traceback, and labels
are never shifted: an unreadable frame, clips of different frame sizes in one split, a
label file whose clip count differs from the test folders."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from reconad.cli import main
from reconad.data.video import Clip, ClipWindows, write_moving_shapes
from reconad.errors import DataError


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    """3 training and 2 test clips of 12 frames, 24x32, JPEG frames like UCSD's."""
    return write_moving_shapes(
        tmp_path_factory.mktemp("shapes"), n_train=3, n_test=2, n_frames=12, size=(24, 32), ext="jpg"
    )


@pytest.fixture
def copy(shapes, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(shapes, root)
    return root


def _refused(root, tmp_path, capsys, *extra: str) -> str:
    argv = ["benchmark", "video", "--root", str(root), "--frame-size", "24,32", "--clip-length", "4"]
    argv += ["--epochs", "1", "--set", "width=4", "--quiet", "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    assert not (tmp_path / "out" / "results.json").exists()
    return err


def test_truncated_frame_names_the_file(copy, tmp_path, capsys):
    frame = copy / "training" / "frames" / "02" / "005.jpg"
    data = frame.read_bytes()
    frame.write_bytes(data[:-20])  # the header opens; the pixels do not decode
    with Image.open(frame) as im:
        assert im.size == (32, 24)
    err = _refused(copy, tmp_path, capsys)
    assert str(frame) in err and "not a readable image" in err


def test_garbage_frame_names_the_file(copy, tmp_path, capsys):
    frame = copy / "testing" / "frames" / "01" / "003.jpg"
    frame.write_bytes(b"not an image at all")
    err = _refused(copy, tmp_path, capsys)
    assert str(frame) in err and "not a readable image" in err


def test_clips_of_different_sizes_in_one_split_name_the_clip(copy, tmp_path, capsys):
    folder = copy / "training" / "frames" / "03"
    for f in folder.iterdir():
        with Image.open(f) as im:
            im.resize((40, 30)).save(f)
    err = _refused(copy, tmp_path, capsys)
    assert str(folder) in err and "40x30" in err and "32x24" in err and "clip 01" in err


@pytest.mark.parametrize("entries", [1, 3])
def test_label_list_with_another_clip_count_is_refused(copy, tmp_path, capsys, entries):
    m = copy / "testing" / "Shapes.m"
    m.write_text("".join(f"TestVideoFile{{end+1}}.gt_frame = [2:{3 + k}];\n" for k in range(entries)))
    err = _refused(copy, tmp_path, capsys)
    assert str(m) in err and f"{entries} label entries for 2 clips" in err


def test_mat_labels_with_another_clip_count_are_refused(copy, tmp_path, capsys):
    from scipy.io import savemat

    gt = np.empty((1, 3), dtype=object)
    for k in range(3):
        gt[0, k] = np.array([[2], [5]])
    savemat(copy / "ped2.mat", {"gt": gt})
    err = _refused(copy, tmp_path, capsys, "--labels", "mat")
    assert str(copy / "ped2.mat") in err and "3 label entries for 2 clips" in err


def test_mat_labels_of_the_wrong_shape_name_the_file(copy, tmp_path, capsys):
    from scipy.io import savemat

    gt = np.empty((1, 2), dtype=object)
    gt[0, 0], gt[0, 1] = np.array([[2], [5]]), np.array([1, 2, 3])
    savemat(copy / "ped2.mat", {"gt": gt})
    err = _refused(copy, tmp_path, capsys, "--labels", "mat")
    assert str(copy / "ped2.mat") in err and "entry 2" in err


def test_windows_refuse_clips_of_different_working_sizes():
    a = Clip("a", np.zeros((6, 24, 32, 1), np.uint8), [f"a/{i}.png" for i in range(6)])
    b = Clip("b", np.zeros((6, 20, 32, 1), np.uint8), [f"b/{i}.png" for i in range(6)])
    with pytest.raises(DataError, match=r"^b: clip b has frames of shape \[20, 32, 1\]"):
        ClipWindows([a, b], length=4)
    assert len(ClipWindows([a, a], length=4)) == 6
