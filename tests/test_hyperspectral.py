"""Hyperspectral scenes: .mat (v5, v7.3) and ENVI readers, bad cubes, RX, HADGAN, the protocol."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from reconad.cli import main
from reconad.data.hyperspectral import list_scenes, load_scene, planted_scene, read_envi, write_envi
from reconad.detector import Detector
from reconad.errors import DataError
from reconad.metrics import image_auroc
from reconad.protocols.hyperspectral import scene_scores

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def planted():
    return planted_scene((32, 32), bands=24, n_anomalies=10, seed=1)


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory, planted):
    """One scene as a MATLAB v5 file, one as an ENVI pair with a PNG map."""
    cube, gt = planted
    root = tmp_path_factory.mktemp("scenes")
    savemat(root / "planted-mat.mat", {"data": cube, "map": gt})
    write_envi(root / "planted-envi", cube, "bil")
    Image.fromarray(gt * 255).save(root / "planted-envi_map.png")
    return root


def test_mat_v5_and_envi_read_the_same_cube(scene_dir, planted):
    cube, gt = planted
    a, b = load_scene(scene_dir / "planted-mat.mat"), load_scene(scene_dir / "planted-envi.hdr")
    assert a.cube.shape == (32, 32, 24) and np.array_equal(a.cube, cube.astype(np.float32))
    assert np.array_equal(a.cube, b.cube) and np.array_equal(a.gt, gt > 0) and np.array_equal(b.gt, gt > 0)
    assert [p.name for p in list_scenes(scene_dir)] == ["planted-envi.hdr", "planted-mat.mat"]
    batch = a.batch()
    assert batch.whole_scene and batch.x.shape == (32 * 32, 24) and float(batch.x.max()) == 1.0


@pytest.mark.parametrize("interleave, dtype", [("bsq", "<u2"), ("bip", ">i2"), ("bil", "<f4")])
def test_envi_interleaves_and_byte_orders(tmp_path, planted, interleave, dtype):
    cube = planted[0][:5, :7, :3]
    header = write_envi(tmp_path / "c", cube, interleave, dtype)
    assert np.array_equal(read_envi(header), cube.astype(np.float32))


def test_mat_v73_through_h5py(tmp_path, planted):
    h5py = pytest.importorskip(
        "h5py", reason="h5py not installed (pip install 'reconad[hyperspectral]'): v7.3 untested"
    )
    cube, gt = planted
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as f:
        f["data"] = cube.T  # MATLAB writes column-major: the axes come reversed
        f["map"] = gt.T
    scene = load_scene(tmp_path / "v73.mat")
    assert np.array_equal(scene.cube, cube.astype(np.float32)) and np.array_equal(scene.gt, gt > 0)


def test_map_shape_mismatch_names_the_file(tmp_path, planted):
    cube, gt = planted
    savemat(tmp_path / "bad.mat", {"data": cube, "map": gt[:-2]})
    with pytest.raises(DataError, match=r"bad\.mat: the map is 30x32 but the cube is 32x32"):
        load_scene(tmp_path / "bad.mat")


def test_nan_bands_name_the_file(tmp_path, planted):
    cube = planted[0].astype(np.float64)
    cube[3, 4, 5] = np.nan
    savemat(tmp_path / "nan.mat", {"data": cube, "map": planted[1]})
    with pytest.raises(DataError, match=r"nan\.mat: 1 band\(s\) hold NaN or infinite values \(1-based: 6\)"):
        load_scene(tmp_path / "nan.mat")


def test_rx_finds_planted_spectra(scene_dir, tmp_path):
    scene = load_scene(scene_dir / "planted-mat.mat")
    det = Detector("rx", val_fraction=0.0, progress=False)
    with pytest.warns(UserWarning, match="no held-out"):
        det.fit(scene.dataset())
    scores = scene_scores(det, scene).reshape(-1)
    assert image_auroc(scene.gt.reshape(-1), scores) > 0.99
    top = np.argsort(-scores)[: int(scene.gt.sum())]
    assert scene.gt.reshape(-1)[top].mean() > 0.9  # the highest scores are the planted pixels
    det.save(tmp_path / "rx")
    again = scene_scores(Detector.load(tmp_path / "rx"), scene).reshape(-1)
    assert np.allclose(again, scores)


def test_hadgan_detectors_on_a_whole_scene(scene_dir):
    torch.manual_seed(0)
    scene = load_scene(scene_dir / "planted-mat.mat")
    det = Detector("hadgan", val_fraction=0.0, progress=False, epochs=3, hidden=[32, 32])
    with pytest.warns(UserWarning):
        det.fit(scene.dataset())
    maps = det.model_.detect(scene.batch())
    assert set(maps) == {"spatial", "spectral", "fused"} and maps["fused"].shape == scene.shape
    assert 0.0 <= maps["fused"].min() and maps["fused"].max() <= 1.0
    assert image_auroc(scene.gt.reshape(-1), maps["fused"].reshape(-1)) > 0.8
    partial = det.decision_function(scene.spectra()[:50])  # no image: the spectral detector only
    assert partial.shape == (50,)


def test_protocol_end_to_end_with_rx_beside(scene_dir, tmp_path):
    out = tmp_path / "bench"
    argv = ["benchmark", "--protocol", "hyperspectral", "--root", str(scene_dir), "--model", "hadgan"]
    argv += ["--scenes", "planted-mat,planted-envi", "--epochs", "2", "--set", "hidden=[32,32]"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["models"] == ["hadgan", "rx"] and [r["scene"] for r in doc["rows"]] == ["planted-mat", "planted-envi"]
    assert all(r["rx"] > 0.99 for r in doc["rows"])
    assert (out / "maps" / "planted-mat.png").is_file()
    assert main([*argv, "--out", str(out), "--quiet", "--scenes", "nope"]) == 2  # unknown scene: one-line error
