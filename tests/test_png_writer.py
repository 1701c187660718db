"""The overlay PNG encoder and the overlay blend."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from reconad.png_writer import encode_rgb_png
from reconad.visualize import _jet_table, overlay, save_overlay


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 7, 3), (9, 1, 3), (33, 65, 3), (256, 516, 3)])
def test_any_reader_decodes_the_same_pixels(shape):
    rng = np.random.default_rng(sum(shape))
    rgb = rng.integers(0, 256, size=shape, dtype=np.uint8)
    rgb[: shape[0] // 2] = np.cumsum(rgb[: shape[0] // 2], axis=1, dtype=np.uint8)  # smooth and noisy parts
    decoded = Image.open(io.BytesIO(encode_rgb_png(rgb)))
    assert decoded.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(decoded), rgb)


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 3), np.float32),
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
    ],
)
def test_other_arrays_are_refused(bad):
    with pytest.raises(ValueError, match="uint8"):
        encode_rgb_png(bad)


def test_the_blend_is_the_float64_blend_to_one_level():
    rng = np.random.default_rng(0)
    img = rng.random((3, 40, 50))
    amap = rng.normal(size=(40, 50)) * 3
    amap[0, :3] = [np.nan, np.inf, -np.inf]
    got = overlay(img, amap, -1.0, 2.0)
    norm = np.clip((np.nan_to_num(amap, nan=-1.0) + 1.0) / 3.0, 0, 1)
    jet = _jet_table()  # matplotlib's own 256 colours, looked up in float64
    heat = jet[np.clip((norm * len(jet)).astype(np.int64), 0, len(jet) - 1)]
    want = (np.clip(0.55 * img.transpose(1, 2, 0) + 0.45 * heat, 0, 1) * 255).astype(np.uint8)
    assert got.dtype == np.uint8 and got.shape == (40, 50, 3)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_a_saved_overlay_holds_the_image_beside_its_heat_map(tmp_path):
    img = np.linspace(0, 1, 3 * 16 * 20).reshape(3, 16, 20)
    path = save_overlay(tmp_path / "o.png", img, np.zeros((16, 20)), 0.0, 1.0)
    row = np.asarray(Image.open(path))
    assert row.shape == (16, 20 + 4 + 20, 3)
    np.testing.assert_array_equal(row[:, :20], (img.transpose(1, 2, 0) * 255).astype(np.uint8))
    assert not list(tmp_path.glob("*.tmp*"))
