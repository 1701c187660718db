"""Tiled scoring (reconad.tiling): the grid, the blending, the Detector's tiled fit and
score, persistence, ONNX parity and the one-line errors for tile settings that cannot work."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch

from reconad import Detector
from reconad.errors import ConfigError
from reconad.inference import Tiler
from reconad.tiling import RandomTiles, TileGrid, blend_window

pytestmark = pytest.mark.usefixtures("single_thread")


def _texture(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    return (0.45 + 0.1 * rng.random((n, h, w))).astype(np.float32)


@pytest.fixture(scope="module")
def tiled(single_thread) -> tuple[Detector, np.ndarray]:
    """An AE trained on 32-px tiles of 80 x 112 noise images."""
    rng = np.random.default_rng(0)
    train = _texture(rng, 12, 80, 112)
    det = Detector("ae", tile_size=32, tile_overlap=8, epochs=3, seed=0, progress=False).fit(train)
    return det, _texture(rng, 3, 80, 112)


@pytest.mark.parametrize("h, w", [(64, 64), (70, 100), (32, 33), (20, 50)])
def test_the_grid_covers_every_pixel_with_whole_tiles(h, w):
    grid = TileGrid(h, w, tile=32, overlap=8)
    ph, pw = grid.padded
    covered = np.zeros((ph, pw), dtype=int)
    for top, left in grid.positions:
        assert 0 <= top <= ph - 32 and 0 <= left <= pw - 32  # no tile hangs over the edge
        covered[top : top + 32, left : left + 32] += 1
    assert covered.min() >= 1
    assert (ph, pw) == (max(h, 32), max(w, 32))  # smaller images are padded up to one tile


def test_blending_leaves_no_seam_where_each_tile_has_a_border_artifact():
    """Every tile's map is 1 with a raised 3-px rim (a model's zero-padding effect): the
    stitched map is 1 everywhere inside the image, tile borders included."""

    def scorer(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = np.ones((len(tiles), 32, 32), np.float32)
        m[:, :3], m[:, -3:], m[:, :, :3], m[:, :, -3:] = 5.0, 5.0, 5.0, 5.0
        return np.zeros(len(tiles), np.float32), m

    _, maps = Tiler(32, 8).score([np.zeros((3, 100, 100), np.float32)], scorer)
    inner = maps[0][8:-8, 8:-8]  # away from the image border, where only one tile reaches
    assert float(inner.max()) < 1.02  # a rim narrower than half the overlap never shows
    assert float(np.abs(inner - 1).mean()) < 0.005


def test_the_window_never_reaches_zero_and_is_one_in_the_middle():
    w = blend_window(32, 8)
    assert float(w.min()) > 0 and float(w[16, 16]) == 1.0
    assert float(w[0, 16]) < 0.01 and float(w[8, 16]) == 1.0  # outer half of the band ~0, past it 1
    assert torch.all(blend_window(32, 0) == 1)


def test_the_image_score_is_the_highest_tile_score():
    def scorer(tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return tiles.mean(axis=(1, 2, 3)), tiles.mean(axis=1)

    img = np.zeros((3, 64, 96), np.float32)
    img[:, 50:60, 80:90] = 1.0
    scores, maps = Tiler(32, 0, batch_size=2).score([img], scorer)  # 6 tiles in batches of 2
    assert scores[0] == pytest.approx(100 / 1024)
    assert maps[0].shape == (64, 96)
    assert np.allclose(maps[0], img[0])  # a per-pixel identity map survives stitching exactly


def test_training_tiles_are_seeded_and_cut_from_the_native_image():
    from reconad.data.inputs import ArrayImageDataset

    base = ArrayImageDataset(np.random.default_rng(0).random((2, 70, 90)).astype(np.float32), None)
    a, b, c = RandomTiles(base, 32, seed=0), RandomTiles(base, 32, seed=0), RandomTiles(base, 32, seed=1)
    assert len(a) == 2 * len(TileGrid(70, 90, 32, 0))
    assert a[3].image.shape == (3, 32, 32)
    assert torch.equal(a[3].image, b[3].image) and not torch.equal(a[3].image, c[3].image)


def test_a_tiled_detector_scores_at_native_size_and_finds_a_small_defect(tiled):
    det, normal = tiled
    bad = normal.copy()
    bad[:, 40:46, 70:76] = 1.0  # 6 px, a fraction of one tile
    scores, maps = det.score_and_map(np.concatenate([normal, bad]))
    assert maps.shape == (6, 80, 112)
    assert scores[3:].min() > scores[:3].max()
    peak = np.unravel_index(maps[3].argmax(), maps[3].shape)
    assert 36 <= peak[0] <= 50 and 66 <= peak[1] <= 80


def test_a_constant_image_gives_a_map_without_seams(tiled):
    """Tile borders (interior ones) hold the same values as tile centres, within noise."""
    det, _ = tiled
    flat = np.full((1, 80, 112), 0.5, dtype=np.float32)
    amap = det.anomaly_map(flat)[0]
    starts = [p[1] for p in TileGrid(80, 112, 32, 8).positions[:4]]  # the first row's lefts
    borders = starts[1:]  # where a tile begins inside the image
    centres = [s + 16 for s in starts]
    band = amap[16:64]
    at_borders = np.concatenate([band[:, b - 1 : b + 1].ravel() for b in borders])
    at_centres = np.concatenate([band[:, c - 1 : c + 1].ravel() for c in centres])
    spread = float(band.std()) + 1e-8
    assert abs(at_borders.mean() - at_centres.mean()) < 2 * spread


def test_tiling_survives_save_and_load_and_exports_with_its_record(tiled, tmp_path):
    from reconad.export import OnnxDetector, export_onnx

    det, normal = tiled
    det.save(tmp_path / "model")
    back = Detector.load(tmp_path / "model")
    assert back.tiled and back.settings["tile_size"] == 32
    assert np.array_equal(back.decision_function(normal), det.decision_function(normal))
    path = export_onnx(det, tmp_path / "export" / "model.onnx")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["preprocessing"]["tiling"]["tile_size"] == 32 and meta["preprocessing"]["shape"][-1] == 32
    session = OnnxDetector(path)
    img = np.broadcast_to(normal[0], (3, *normal[0].shape[-2:])).astype(np.float32)
    s_onnx, m_onnx = Tiler(32, 8).score([img], session)
    s_torch, m_torch = det.score_and_map(normal[:1])
    assert s_onnx[0] == pytest.approx(float(s_torch[0]), rel=1e-4, abs=1e-6)
    assert float(np.abs(m_onnx[0] - m_torch[0]).max()) <= 1e-4 * float(np.ptp(m_torch[0]) + 1e-12)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"tile_size": 32, "tile_overlap": 32}, r"tile_overlap \(32\) must be smaller than tile_size"),
        ({"tile_size": 32, "tile_overlap": -1}, "tile_overlap must be an integer >= 0"),
        ({"tile_size": 2}, "tile_size must be >= "),
        ({"tile_size": "big"}, "tile_size must be an integer"),
    ],
)
def test_tile_settings_that_cannot_work_are_one_line_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        Detector("ae", **options).check_params()


def test_retiling_at_scoring_time_drops_a_threshold_it_would_misapply(tiled):
    det, _ = tiled
    other = Detector("ae", tile_size=32, tile_overlap=8)
    other.model_, other.threshold_, other.calibration_ = det.model_, det.threshold_, det.calibration_
    pipe = other.pipeline()
    same = pipe.with_tiling(32, 8)  # the run's own tiling: kept
    assert same.threshold == det.threshold_ and same.tiling == (32, 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        retiled = pipe.with_tiling(32, 0)
    assert retiled.threshold is None and retiled.calibrated.calibration is None and retiled.tiling == (32, 0)
    assert np.isnan(retiled.p_values([1.0])).all() and retiled.labels([1.0]) is None
    assert any("calibrated with tile_size=32" in str(w.message) for w in caught)
    assert pipe.threshold == det.threshold_ and pipe.tiling == (32, 8)  # a new pipeline: this one is unchanged


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_the_server_scores_a_tiled_run_by_tiles_at_native_size(tiled, tmp_path, engine):
    import io

    import httpx
    from PIL import Image

    from helpers.serve import server_thread
    from reconad.serve.app import create_app
    from reconad.serve.config import ServeConfig, ServedRun

    det, normal = tiled
    det.save(tmp_path / "run" / "model")
    bad = normal[0].copy()
    bad[40:46, 70:76] = 1.0
    files = []
    for name, img in (("ok.png", normal[1]), ("bad.png", bad)):
        buf = io.BytesIO()
        Image.fromarray((img * 255).round().astype(np.uint8)).save(buf, format="PNG")
        files.append(("images", (name, buf.getvalue(), "image/png")))
    config = ServeConfig(
        runs=[ServedRun("t", str(tmp_path / "run"))], db=f"sqlite:///{tmp_path / 'r.db'}", engine=engine, threads=1
    )
    with server_thread(create_app(config)) as url, httpx.Client(base_url=url, timeout=60) as client:
        r = client.post("/v1/models/t/score", params={"map": "raw"}, files=files)
    assert r.status_code == 200, r.text
    ok, flagged = r.json()["results"]
    assert np.asarray(flagged["map"]).shape == (80, 112)  # the image's own size, not the tile's
    assert flagged["score"] > ok["score"]
    as_sent = (np.stack([normal[1], bad]) * 255).round() / 255  # the 8-bit PNGs the server decoded
    want = det.decision_function(as_sent.astype(np.float32))
    assert [ok["score"], flagged["score"]] == pytest.approx(want.tolist(), rel=1e-4)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_predict_scores_a_tiled_run_by_tiles_with_either_engine(tiled, tmp_path, engine):
    from PIL import Image

    from reconad.runs import predict_run
    from reconad.streaming import complete_rows

    det, normal = tiled
    det.save(tmp_path / "run" / "model")
    paths = []
    for i, img in enumerate(normal):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray((img * 255).round().astype(np.uint8)).save(paths[-1])
    result = predict_run(tmp_path / "run", [str(p) for p in paths], tmp_path / "out", engine=engine, progress=False)
    got = [float(r[1]) for r in complete_rows(result.scores_csv)]
    want = det.decision_function(((normal * 255).round() / 255).astype(np.float32))
    assert got == pytest.approx(want.tolist(), rel=1e-4, abs=1e-6)
    with Image.open(sorted((tmp_path / "out").glob("*.png"))[0]) as overlay:
        assert overlay.size[1] == 80 and overlay.size[0] >= 112  # panels at the image's own size


def test_the_server_takes_another_tiling_and_then_gives_no_verdict(tiled, tmp_path):
    import io

    import httpx
    from PIL import Image

    from helpers.serve import server_thread
    from reconad.serve.app import create_app
    from reconad.serve.config import ServeConfig, ServedRun

    det, normal = tiled
    det.save(tmp_path / "run" / "model")
    buf = io.BytesIO()
    Image.fromarray((normal[0] * 255).round().astype(np.uint8)).save(buf, format="PNG")
    config = ServeConfig(
        runs=[ServedRun("t", str(tmp_path / "run"))], db=f"sqlite:///{tmp_path / 'r.db'}", threads=1, tile_overlap=0
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with server_thread(create_app(config)) as url, httpx.Client(base_url=url, timeout=60) as client:
            r = client.post("/v1/models/t/score", params={"map": "raw"}, files=[("images", ("a.png", buf.getvalue()))])
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert res["verdict"] is None and np.asarray(res["map"]).shape == (80, 112)
    assert any("calibrated with tile_size=32" in str(w.message) for w in caught)


def test_serve_refuses_an_overlap_as_large_as_the_tile():
    from reconad.serve.config import ServeConfig

    with pytest.raises(ConfigError, match="must be smaller than tile_size"):
        ServeConfig(runs=[], tile_size=32, tile_overlap=40).check()
