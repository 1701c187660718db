"""The fast PNG path of ``reconad.imaging.read_array`` (pyspng) gives Pillow's pixels, and
every PNG it does not take, or that pyspng is missing for, still decodes through Pillow."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reconad import imaging
from reconad.errors import DataError
from reconad.imaging import load_array, read_array, to_unit_range

pytest.importorskip("pyspng")  # the ``fast`` extra, installed by ``make setup``

SHAPES = {"L": (24, 40), "LA": (24, 40, 2), "RGB": (24, 40, 3), "RGBA": (24, 40, 4)}


def _png(path: Path, mode: str, seed: int = 0, **save: object) -> Path:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, SHAPES[mode], dtype=np.uint8), mode).save(path, **save)
    return path


def _pillow(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        raw = imaging._decoded(im, path)
    return to_unit_range(raw[:, :, None] if raw.ndim == 2 else raw)


@pytest.mark.parametrize("mode", sorted(SHAPES))
def test_fast_path_takes_8_bit_grey_and_rgb_pngs_and_gives_pillows_pixels(tmp_path, mode):
    path = _png(tmp_path / f"{mode}.png", mode)
    assert imaging._fast_png(path.read_bytes()) is not None
    assert np.array_equal(read_array(path), _pillow(path))


def test_transparency_key_and_compression_do_not_change_the_pixels(tmp_path):
    keyed = _png(tmp_path / "keyed.png", "RGB", transparency=(1, 2, 3))
    raw = _png(tmp_path / "raw.png", "RGB", compress_level=0)
    for path in (keyed, raw):
        assert imaging._fast_png(path.read_bytes()) is not None
        assert np.array_equal(read_array(path), _pillow(path))


def test_palette_and_16_bit_pngs_go_through_pillow(tmp_path):
    rng = np.random.default_rng(1)
    palette = tmp_path / "p.png"
    Image.fromarray(rng.integers(0, 256, (9, 9, 3), dtype=np.uint8)).convert("P").save(palette)
    sixteen = tmp_path / "i16.png"
    Image.fromarray(rng.integers(0, 65536, (9, 9), dtype=np.uint16)).save(sixteen)
    for path in (palette, sixteen):
        assert imaging._fast_png(path.read_bytes()) is None
        assert np.array_equal(read_array(path), _pillow(path))


def test_without_pyspng_pngs_decode_through_pillow_alike(tmp_path, monkeypatch):
    path = _png(tmp_path / "rgb.png", "RGB")
    fast = read_array(path)
    monkeypatch.setitem(sys.modules, "pyspng", None)  # import pyspng now raises ImportError
    assert imaging._fast_png(path.read_bytes()) is None
    assert np.array_equal(read_array(path), fast)


def test_a_broken_png_is_named_by_pillows_message(tmp_path):
    whole = _png(tmp_path / "whole.png", "RGB").read_bytes()
    broken = tmp_path / "broken.png"
    broken.write_bytes(whole[:70])
    assert imaging._fast_png(broken.read_bytes()) is None
    with pytest.raises(DataError, match=r"cannot read image: .*broken\.png") as caught:
        read_array(broken)
    assert "BytesIO" not in str(caught.value)
    broken.write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"cannot identify image file '.*broken\.png'"):
        read_array(broken)  # Pillow opened the file by its name


def test_an_image_over_pillows_size_limit_is_left_to_pillow(tmp_path, monkeypatch):
    path = _png(tmp_path / "big.png", "RGB")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 24 x 40 is over it
    assert imaging._fast_png(path.read_bytes()) is None


def test_an_image_already_at_the_input_size_is_not_resampled_or_changed(tmp_path):
    path = _png(tmp_path / "rgb.png", "RGB")
    arr = load_array(path, (24, 40))
    assert arr.dtype == np.float32 and arr.shape == (3, 24, 40)
    assert np.array_equal(arr, read_array(path).transpose(2, 0, 1))
