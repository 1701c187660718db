"""geometry="auto": the input geometry chosen from the training images' sizes alone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reconad import Detector
from reconad.data import FolderDataset
from reconad.data.geometry import ASPECT_LIMIT, apply_geometry, choose_geometry, fixed, image_sizes
from reconad.errors import ConfigError


def _mixed_tiles(n: int = 200, seed: int = 0) -> list[tuple[int, int]]:
    """Long parts in both orientations, aspect 1.2-2.5, long side 270-600 px."""
    rng = np.random.default_rng(seed)
    long = rng.integers(270, 600, n)
    short = (long / rng.uniform(1.2, 2.5, n)).astype(int)
    return [(int(a), int(b)) if i % 3 else (int(b), int(a)) for i, (a, b) in enumerate(zip(long, short))]


def test_near_square_images_are_squashed_at_most_to_the_size_asked():
    g = choose_geometry([(300, 310), (320, 300), (400, 390)] * 5, max_side=256)
    assert (g.image_size, g.resize_mode, g.tile_size) == (256, "resize", None)
    assert g.n_images == 15 and g.median_aspect < ASPECT_LIMIT


def test_small_images_are_not_up_scaled():
    g = choose_geometry([(100, 100), (120, 118), (140, 150)] * 10, max_side=256)
    assert g.resize_mode == "resize" and g.image_size == 96  # 10th percentile 100, a multiple of 32
    assert choose_geometry([(28, 28)] * 3, max_side=256).image_size == 64  # digits: the encoder's floor
    assert choose_geometry([(20, 20)] * 3, max_side=256, min_side=96).image_size == 96  # the model's floor
    assert choose_geometry([(20, 20)] * 3, max_side=48).image_size == 48  # never above the size asked


def test_long_parts_keep_their_aspect_whatever_their_orientation():
    sizes = _mixed_tiles()
    g = choose_geometry(sizes, max_side=256)
    assert g.resize_mode == "letterbox" and g.tile_size is None
    long_sides = np.array([max(s) for s in sizes])
    assert g.image_size <= 256 and g.image_size % 32 == 0
    assert (long_sides >= g.image_size).mean() >= 0.9  # nine images in ten are not up-scaled
    smaller = choose_geometry([(h // 2, w // 2) for h, w in sizes], max_side=256)
    assert smaller.image_size < g.image_size and smaller.resize_mode == "letterbox"
    # the same parts all in one orientation: the same choice
    assert choose_geometry([(max(s), min(s)) for s in sizes], 256) == g


def test_large_images_are_tiled_at_native_resolution():
    g = choose_geometry([(2048, 2048), (2000, 2100)] * 4, max_side=256)
    assert g.tile_size == 256 and g.image_size == 256
    assert choose_geometry([(900, 900)] * 4, max_side=256).tile_size is None  # under 4x: resized


def test_bad_geometry_values_are_one_line_errors():
    with pytest.raises(ConfigError, match="geometry"):
        Detector("ae", geometry="square").check_params()
    with pytest.raises(ConfigError, match="at least one"):
        choose_geometry([])


def _folder(tmp_path: Path, hw: tuple[int, int], n: int) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "good"
    folder.mkdir()
    for i in range(n):
        Image.fromarray((rng.random(hw) * 255).astype(np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_sizes_come_from_files_only(tmp_path):
    folder = _folder(tmp_path, (40, 100), 3)
    assert image_sizes(folder) == [(40, 100)] * 3
    assert image_sizes(sorted(folder.iterdir())) == [(40, 100)] * 3
    assert image_sizes(np.zeros((3, 40, 100))) is None  # arrays: no file sizes
    settings = {"geometry": "auto", "image_size": 128, "resize_mode": "resize", "tile_size": None}
    record = apply_geometry(settings, np.zeros((3, 40, 100)))
    assert record is not None and settings["image_size"] == 128 and "not image files" in record["reason"]
    ds = FolderDataset(folder, image_size=128)  # already read at a size: kept as given
    assert image_sizes(ds) == [(40, 100)] * 3
    assert "not image files" in apply_geometry(settings, ds)["reason"] and settings["resize_mode"] == "resize"
    assert apply_geometry({"geometry": None}, folder) is None


@pytest.mark.usefixtures("single_thread")
def test_detector_trains_scores_and_saves_with_the_chosen_geometry(tmp_path):
    folder = _folder(tmp_path, (40, 100), 12)
    det = Detector("ae", geometry="auto", image_size=128, epochs=1, device="cpu", progress=False).fit(folder)
    assert det.settings["image_size"] == 96 and det.settings["resize_mode"] == "letterbox"
    assert det.geometry_["image_size"] == 96 and det.geometry_["n_images"] == 12
    assert det.anomaly_map(folder).shape == (12, 96, 96)
    assert det.get_params()["geometry"] == "auto" and "image_size" in det.get_params()
    det.save(tmp_path / "m")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["geometry"]["resize_mode"] == "letterbox" and cfg["detector"]["image_size"] == 96
    back = Detector.load(tmp_path / "m")
    assert back.geometry_ == det.geometry_ and back.settings["image_size"] == 96
    np.testing.assert_allclose(back.decision_function(folder), det.decision_function(folder), rtol=1e-5)
    keep = fixed(det.settings)
    assert keep == {"geometry": None, "image_size": 96, "resize_mode": "letterbox", "tile_size": None}


@pytest.mark.usefixtures("single_thread")
def test_reconad_train_chooses_the_geometry_and_test_and_predict_read_with_it(tmp_path):
    """``--set geometry=auto`` through the CLI: chosen from the training files before the data
    are read, recorded in run.json, and used by ``reconad test`` and ``predict``."""
    from helpers.parity import cli

    root = tmp_path / "data"
    root.mkdir()
    _folder(root, (40, 100), 12)
    defect = root / "defect"
    defect.mkdir()
    Image.fromarray(np.full((40, 100), 255, np.uint8)).save(defect / "d.png")
    run = tmp_path / "run"
    args = ["train", "--model", "ae", "--dataset", "folder", "--root", str(root), "--out", str(run)]
    assert cli([*args, "--image-size", "128", "--epochs", "1", "--set", "geometry=auto", "--quiet"]) == (0, "")
    info = json.loads((run / "run.json").read_text())
    assert info["geometry"]["resize_mode"] == "letterbox" and info["geometry"]["image_size"] == 96
    assert info["data"]["image_size"] == 96 and info["data"]["resize_mode"] == "letterbox"
    assert cli(["test", str(run), "--quiet", "--no-report"])[0] == 0
    code, err = cli(["predict", str(run), str(defect / "d.png"), "--out", str(tmp_path / "p"), "--quiet"])
    assert code == 0, err
    overlay = next((tmp_path / "p").glob("*_d.png"))
    assert np.asarray(Image.open(overlay)).shape[0] == 96
