"""Tests for reconad.data: image I/O, MVTec/folder/magnetic-tile readers, textures.

All fixtures are tiny trees written in tmp_path in each dataset's real layout; nothing
here reads ../shared.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from torch.utils.data import DataLoader

from reconad.data import (
    DATASETS,
    FolderDataset,
    MagneticTileDataset,
    MVTecDataset,
    build_image_dataset,
    collate_images,
    ensure_textures,
    generate_textures,
    list_categories,
    list_images,
    load_image,
    load_mask,
    split_holdout,
    train_val_datasets,
)
from reconad.data import textures as tex
from reconad.errors import ConfigError, DataError

RNG = np.random.default_rng(1234)


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def _rgb(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _grey(h: int, w: int) -> np.ndarray:
    return RNG.integers(0, 256, size=(h, w), dtype=np.uint8)


# --------------------------------------------------------------------------- fixtures


@pytest.fixture()
def mvtec_root(tmp_path: Path) -> Path:
    """bottle: 3 train (RGB, L, RGBA), test good x2 (one 16-bit), crack x2 (one mask
    grey-ish, one mask missing), plus an empty category folder and a stray file."""
    root = tmp_path / "mvtec"
    cat = root / "bottle"
    _png(cat / "train" / "good" / "000.png", _rgb(24, 24))
    _png(cat / "train" / "good" / "001.png", _grey(20, 28))
    _png(cat / "train" / "good" / "002.png", RNG.integers(0, 256, (16, 16, 4), dtype=np.uint8))
    (cat / "train" / "good" / "notes.txt").write_text("not an image")
    _png(cat / "test" / "good" / "000.png", _rgb(32, 32))
    _png(cat / "test" / "good" / "001.png", (RNG.integers(0, 65536, (24, 24))).astype(np.uint16))
    _png(cat / "test" / "crack" / "000.png", _rgb(32, 32))
    _png(cat / "test" / "crack" / "001.png", _rgb(32, 32))
    mask = np.zeros((32, 32), np.uint8)
    mask[4:12, 4:12] = 255  # clearly on
    mask[20:28, 20:28] = 100  # grey, below threshold
    mask[4:12, 20:28] = 200  # grey, above threshold
    _png(cat / "ground_truth" / "crack" / "000_mask.png", mask)
    (root / "carpet" / "train" / "good").mkdir(parents=True)
    return root


@pytest.fixture()
def mt_root(tmp_path: Path) -> Path:
    """Magnetic tile: 10 Free, 2 Crack (one grey-ish mask), 1 Uneven (empty mask)."""
    root = tmp_path / "mt"
    for i in range(10):
        img = root / "MT_Free" / "Imgs" / f"exp0_num_{i}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_grey(20, 30)).save(img, quality=90)
        _png(img.with_suffix(".png"), np.zeros((20, 30), np.uint8))
    for i in range(2):
        img = root / "MT_Crack" / "Imgs" / f"exp1_num_{i}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_grey(30, 20)).save(img)
        m = np.zeros((30, 20), np.uint8)
        m[5:15, 5:10] = 254 if i == 0 else 130
        m[20:25, 5:10] = 90  # grey, below threshold
        _png(img.with_suffix(".png"), m)
    img = root / "MT_Uneven" / "Imgs" / "exp2_num_0.jpg"
    img.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(_grey(24, 24)).save(img)
    _png(img.with_suffix(".png"), np.zeros((24, 24), np.uint8))
    return root


# --------------------------------------------------------------------------- image I/O


def test_load_image_modes_give_3ch_float(tmp_path: Path) -> None:
    paths = {
        "rgb": _png(tmp_path / "rgb.png", _rgb(20, 30)),
        "l": _png(tmp_path / "l.png", _grey(20, 30)),
        "rgba": _png(tmp_path / "rgba.png", RNG.integers(0, 256, (20, 30, 4), dtype=np.uint8)),
        "i16": _png(tmp_path / "i16.png", np.full((20, 30), 65535, np.uint16)),
        "jpg": tmp_path / "x.JPG",
        "tif16": tmp_path / "t.tif",
    }
    Image.fromarray(_rgb(20, 30)).save(paths["jpg"], format="JPEG")
    Image.fromarray(np.full((20, 30), 32768, np.uint16)).save(paths["tif16"])
    for name, p in paths.items():
        x = load_image(p, 16)
        assert x.shape == (3, 16, 16) and x.dtype == torch.float32, name
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0, name
    assert torch.allclose(load_image(paths["i16"], 8), torch.ones(3, 8, 8))
    assert torch.allclose(load_image(paths["tif16"], 8), torch.full((3, 8, 8), 32768 / 65535), atol=1e-4)
    grey = load_image(paths["l"], 16)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    assert load_image(paths["rgb"], (12, 18)).shape == (3, 12, 18)


def test_resize_modes_geometry(tmp_path: Path) -> None:
    # A 20x40 image: left half black, right half white.
    arr = np.zeros((20, 40), np.uint8)
    arr[:, 20:] = 255
    p = _png(tmp_path / "half.png", arr)
    squash = load_image(p, 20)
    crop = load_image(p, 20, "crop")
    pad = load_image(p, 20, "pad")
    assert squash.shape == crop.shape == pad.shape == (3, 20, 20)
    assert float(squash[0, :, :9].max()) < 0.05 and float(squash[0, :, 11:].min()) > 0.95
    # crop keeps the central 20x20 window: black on the left, white on the right
    assert float(crop[0, :, 0].mean()) < 0.05 and float(crop[0, :, -1].mean()) > 0.95
    # pad keeps the whole image (scaled to 10 rows) and pads the rows by reflection
    assert torch.allclose(pad[0], pad[0, :1].expand(20, 20))  # reflected rows, no black bars
    assert float(pad[0, 10, 0]) < 0.05 and float(pad[0, 10, -1]) > 0.95
    # letterbox keeps the whole image too, with black bars instead of reflected rows
    box = load_image(p, 20, "letterbox")
    assert box.shape == (3, 20, 20) and float(box[:, :5].abs().max()) == 0.0 and float(box[:, -5:].abs().max()) == 0.0
    assert torch.equal(box[:, 5:15], pad[:, 5:15])
    wide = np.zeros((10, 40), np.uint8)
    wide[:, 30:] = 255
    mask = load_mask(_png(tmp_path / "wm.png", wide), 20, "letterbox")
    assert mask[0, :7].sum() == 0 and mask[0, 12:].sum() == 0 and mask[0, 7:12, 15:].all()  # 5 rows, 7 above
    with pytest.raises(ConfigError):
        load_image(p, 20, "stretch")


def test_load_mask_thresholds_after_resizing(tmp_path: Path) -> None:
    m = np.zeros((16, 16), np.uint8)
    m[:8, :8] = 255
    m[8:, 8:] = 127
    m[:8, 8:] = 128
    p = _png(tmp_path / "m.png", m)
    mask = load_mask(p, 16)
    assert mask.shape == (1, 16, 16) and set(mask.unique().tolist()) <= {0.0, 1.0}
    assert mask[0, :8, :8].all() and mask[0, :8, 8:].all() and not mask[0, 8:, 8:].any()
    small = load_mask(p, 4)
    assert small.shape == (1, 4, 4) and set(small.unique().tolist()) <= {0.0, 1.0}
    # same geometry as the image: with "crop", a mask on the cropped-away side disappears
    wide = np.zeros((10, 40), np.uint8)
    wide[:, :5] = 255
    assert load_mask(_png(tmp_path / "w.png", wide), 10, "crop").sum() == 0
    assert load_mask(tmp_path / "w.png", 10, "resize").sum() > 0


def test_unreadable_and_missing_image_raise_dataerror(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"definitely not a png")
    with pytest.raises(DataError, match="cannot read image: .*broken.png"):
        load_image(bad, 8)
    good = _png(tmp_path / "t.png", _rgb(32, 32))
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(DataError, match="trunc.png"):
        load_mask(trunc, 8)
    with pytest.raises(DataError, match="nothere.png"):
        load_image(tmp_path / "nothere.png", 8)


def test_list_images(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "c.tiff", "d.txt", ".hidden.png", "e.Jpeg", "f.bmp"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG", "c.tiff", "e.Jpeg", "f.bmp"]
    with pytest.raises(DataError, match="missing_dir"):
        list_images(tmp_path / "missing_dir")


# --------------------------------------------------------------------------- MVTec


def test_mvtec_train_and_test(mvtec_root: Path) -> None:
    assert list_categories(mvtec_root) == ["bottle", "carpet"]
    train = MVTecDataset(mvtec_root, "bottle", "train", image_size=16)
    assert len(train) == 3 and train.labels == [0, 0, 0] and train.has_masks
    item = train[1]
    assert item.image.shape == (3, 16, 16) and item.label == 0 and item.defect == "good"
    assert item.mask is not None and item.mask.sum() == 0

    with pytest.warns(UserWarning, match="001.png"):
        test = MVTecDataset(mvtec_root, "bottle", "test", image_size=32)
    assert test.labels == [0, 0, 1, 1]
    assert test.defects == ["good", "good", "crack", "crack"]
    crack = test[2]
    assert crack.mask is not None and crack.mask.shape == (1, 32, 32)
    assert set(crack.mask.unique().tolist()) == {0.0, 1.0}
    assert crack.mask.sum() == 2 * 64  # 255 block and the 200 block; the 100 block is off
    assert test[3].mask.sum() == 0  # missing mask -> zeros, with the warning above
    assert test[1].image.shape == (3, 32, 32)  # 16-bit image

    batch = collate_images([test[i] for i in range(4)])
    assert batch.image.shape == (4, 3, 32, 32) and batch.label.tolist() == [0, 0, 1, 1]
    assert batch.has_mask and batch.mask.shape == (4, 1, 32, 32)
    loader = DataLoader(train, batch_size=2, collate_fn=collate_images)
    assert [len(b) for b in loader] == [2, 1]


def test_mvtec_errors_name_paths(mvtec_root: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        MVTecDataset(tmp_path / "nowhere", "bottle")
    with pytest.raises(DataError, match=r"cable.*bottle, carpet"):
        MVTecDataset(mvtec_root, "cable")
    with pytest.raises(DataError, match=r"no training images in .*carpet"):
        MVTecDataset(mvtec_root, "carpet", "train")
    with pytest.raises(ConfigError):
        MVTecDataset(mvtec_root, "bottle", "val")
    bad = mvtec_root / "bottle" / "train" / "good" / "003.png"
    bad.write_bytes(b"garbage")
    ds = MVTecDataset(mvtec_root, "bottle", "train", image_size=16)
    with pytest.raises(DataError, match="003.png"):
        ds[3]


def test_mvtec_without_ground_truth_has_no_masks(mvtec_root: Path) -> None:
    import shutil

    shutil.rmtree(mvtec_root / "bottle" / "ground_truth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        test = MVTecDataset(mvtec_root, "bottle", "test", image_size=16)
    assert not test.has_masks and test[2].mask is None and test[2].label == 1
    assert not collate_images([test[0], test[2]]).has_mask


# --------------------------------------------------------------------------- folder


def test_folder_dataset(tmp_path: Path) -> None:
    _png(tmp_path / "good" / "n1.png", _rgb(20, 20))
    _png(tmp_path / "good" / "n2.jpg", _rgb(20, 20))
    _png(tmp_path / "defect" / "d1.png", _rgb(20, 20))
    _png(tmp_path / "defect" / "d2.png", _rgb(20, 20))
    _png(tmp_path / "defect" / "d3.png", _rgb(20, 20))
    full = np.full((20, 20), 255, np.uint8)
    _png(tmp_path / "masks" / "d1_mask.png", full)
    _png(tmp_path / "masks" / "d2.png", full)
    with pytest.warns(UserWarning, match="d3.png"):
        ds = FolderDataset(tmp_path / "good", tmp_path / "defect", tmp_path / "masks", image_size=8)
    assert ds.labels == [0, 0, 1, 1, 1] and ds.has_masks
    assert [float(ds[i].mask.sum()) for i in range(5)] == [0, 0, 64, 64, 0]

    only_normal = FolderDataset(tmp_path / "good", image_size=8)
    assert len(only_normal) == 2 and not only_normal.has_masks and only_normal[0].mask is None

    # two normals are too few to split into train and test parts; a good_test folder is the test's
    with pytest.raises(DataError, match=r"only 2 normal image\(s\) in .*good"):
        build_image_dataset("folder", tmp_path, split="test", image_size=8)
    _png(tmp_path / "good_test" / "t1.png", _rgb(20, 20))
    with pytest.warns(UserWarning):
        via_root = build_image_dataset("folder", tmp_path, split="test", image_size=8)
    assert via_root.labels == [0, 1, 1, 1] and "good_test" in via_root.paths[0]
    train = build_image_dataset("folder", tmp_path, split="train", image_size=8)
    assert train.labels == [0, 0]
    with pytest.raises(DataError, match="no_such"):
        FolderDataset(tmp_path / "no_such")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty"):
        FolderDataset(tmp_path / "empty")


# --------------------------------------------------------------------------- magnetic tile


def test_magnetic_tile_splits(mt_root: Path) -> None:
    train = MagneticTileDataset(mt_root, "train", image_size=16)
    val = MagneticTileDataset(mt_root, "val", image_size=16)
    test = MagneticTileDataset(mt_root, "test", image_size=16)
    # 10 Free: pool round(8.0) = 8 -> train round(7.2) = 7, val 1; test 2 Free + 3 defects
    assert (len(train), len(val), len(test)) == (7, 1, 5)
    assert train.labels == [0] * 7 and val.labels == [0]
    assert test.labels == [0, 0, 1, 1, 1]
    assert test.defects[2:] == ["crack", "crack", "uneven"]
    parts = [set(d.paths) for d in (train, val, test)]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    free = {str(p) for p in (mt_root / "MT_Free" / "Imgs").glob("*.jpg")}
    assert (parts[0] | parts[1] | parts[2]) & free == free

    again = MagneticTileDataset(mt_root, "train", image_size=16)
    assert again.paths == train.paths
    other = [MagneticTileDataset(mt_root, "train", image_size=16, seed=s).paths for s in range(1, 6)]
    assert any(p != train.paths for p in other)

    c0, _c1, uneven = test[2], test[3], test[4]
    assert c0.image.shape == (3, 16, 16) and c0.mask.shape == (1, 16, 16)
    assert set(c0.mask.unique().tolist()) == {0.0, 1.0}
    native = MagneticTileDataset(mt_root, "test", image_size=(30, 20))  # crack's own size
    # 254 and 130 are on, the 90 block is off: 10 x 5 pixels each
    assert native[2].mask.sum() == native[3].mask.sum() == 50
    assert uneven.label == 1 and uneven.mask.sum() == 0  # empty mask, still a defect
    assert test[0].mask.sum() == 0 and test.has_masks


def test_magnetic_tile_errors(mt_root: Path, tmp_path: Path) -> None:
    (tmp_path / "not_mt" / "MT_Crack").mkdir(parents=True)
    with pytest.raises(DataError, match="not_mt"):
        MagneticTileDataset(tmp_path / "not_mt")
    with pytest.raises(DataError, match="absent"):
        MagneticTileDataset(tmp_path / "absent")
    with pytest.raises(ConfigError):
        MagneticTileDataset(mt_root, "validation")
    (mt_root / "MT_Crack" / "Imgs" / "exp1_num_1.png").unlink()
    with pytest.warns(UserWarning, match="exp1_num_1.jpg"):
        test = MagneticTileDataset(mt_root, "test", image_size=16)
    assert test[3].label == 1 and test[3].mask.sum() == 0


def test_magnetic_tile_labelled_fraction_moves_defects_from_test_to_train(mt_root: Path) -> None:
    from reconad.data.labels import dataset_labels
    from reconad.data.spec import DataSpec

    plain = MagneticTileDataset(mt_root, "test", image_size=16)
    train = MagneticTileDataset(mt_root, "train", image_size=16, labelled_fraction=0.1)
    test = MagneticTileDataset(mt_root, "test", image_size=16, labelled_fraction=0.1)
    # at least one of each defect class (2 crack, 1 uneven) moves, labelled, with its mask
    moved = [p for p, y in zip(train.paths, train.labels) if y == 1]
    assert len(moved) == 2 and set(moved) <= set(plain.paths) and not set(moved) & set(test.paths)
    assert len(test) == len(plain) - 2 and test.labels.count(0) == plain.labels.count(0)
    assert train.labels.count(0) == 7 and list(dataset_labels(train)) == train.labels
    again = MagneticTileDataset(mt_root, "train", image_size=16, labelled_fraction=0.1)
    assert again.paths == train.paths  # seeded
    for bad in (1.0, -0.5, 1.5):  # 0 means off
        with pytest.raises(ConfigError, match="labelled_fraction"):
            MagneticTileDataset(mt_root, "train", image_size=16, labelled_fraction=bad)
    spec = DataSpec("magnetic-tile", str(mt_root), image_size=16, labelled_fraction=0.1, drop_labelled=True)
    normal_only = spec.build("train")
    assert len(normal_only) == 7 and not dataset_labels(normal_only).any()
    assert "without the labelled anomalies" in spec.describe()
    assert len(DataSpec("magnetic-tile", str(mt_root), image_size=16, labelled_fraction=0.1).build("train")) == 9


# --------------------------------------------------------------------------- builders


def test_build_image_dataset_and_holdout(mvtec_root: Path, mt_root: Path) -> None:
    assert DATASETS == ("mvtec", "folder", "magnetic-tile", "textures")
    ds = build_image_dataset("mvtec", mvtec_root, "bottle", "train", image_size=16)
    assert isinstance(ds, MVTecDataset) and len(ds) == 3
    with pytest.raises(ConfigError, match=r"mvtec.*folder.*magnetic-tile.*textures"):
        build_image_dataset("cifar", mvtec_root)
    with pytest.raises(ConfigError, match="bottle"):
        build_image_dataset("mvtec", mvtec_root)  # no category: lists what is there
    with pytest.raises(ConfigError, match="val"):
        build_image_dataset("mvtec", mvtec_root, "bottle", "val")
    with pytest.raises(ConfigError, match="bogus"):
        build_image_dataset("mvtec", mvtec_root, "bottle", bogus=1)

    mt_val = build_image_dataset("magnetic-tile", mt_root, split="val", image_size=16)
    assert len(mt_val) == 1
    tr, va = train_val_datasets("magnetic-tile", mt_root, image_size=16)
    assert (len(tr), len(va)) == (7, 1)

    big = MagneticTileDataset(mt_root, "test", image_size=8)
    a_tr, a_va = split_holdout(big, 0.4, seed=3)
    b_tr, b_va = split_holdout(big, 0.4, seed=3)
    assert a_va.indices == b_va.indices and len(a_va) == 2 and len(a_tr) == 3
    assert sorted(a_tr.indices + a_va.indices) == list(range(5))
    with pytest.raises(ConfigError):
        split_holdout(big, 1.5)


# --------------------------------------------------------------------------- textures

TINY = dict(image_size=48, n_train=2, n_test_good=1, n_test_defect_per_type=1)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_textures_deterministic(tmp_path: Path) -> None:
    a = _files(generate_textures(tmp_path / "a", categories=("brick", "gravel"), seed=7, **TINY))
    b = _files(generate_textures(tmp_path / "b", categories=("brick", "gravel"), seed=7, **TINY))
    c = _files(generate_textures(tmp_path / "c", categories=("brick", "gravel"), seed=8, **TINY))
    assert a == b
    assert a.keys() == c.keys()
    images = [k for k in a if k.endswith(".png")]
    assert len(images) == 2 * (2 + 1 + 4 + 4)  # train, test good, 4 defects + 4 masks
    assert all(a[k] != c[k] for k in images if "/train/" in k)
    assert "brick/ground_truth/scratch/000_mask.png" in a and "README.txt" in a


def test_textures_readable_as_mvtec_with_masks(tmp_path: Path) -> None:
    root = generate_textures(tmp_path / "tex", categories=("grass",), seed=0, **TINY)
    train = MVTecDataset(root, "grass", "train", image_size=48)
    assert len(train) == 2 and train.labels == [0, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every defect image has its mask
        test = MVTecDataset(root, "grass", "test", image_size=48)
    assert test.labels == [0, 1, 1, 1, 1]
    assert sorted(test.defects[1:]) == sorted(tex.DEFECT_TYPES)
    for i in range(len(test)):
        item = test[i]
        area = float(item.mask.mean())
        if item.label == 0:
            assert area == 0
        else:
            assert 0.001 < area < 0.15, (item.defect, area)
    img = Image.open(root / "grass" / "train" / "good" / "000.png")
    assert img.mode == "RGB" and img.size == (48, 48)


@pytest.mark.parametrize("kind", tex.DEFECT_TYPES)
def test_paint_defect_mask_matches_change(kind: str) -> None:
    rng = np.random.default_rng(5)
    src = tex._source("brick")
    base = tex._normal_crop(src, tex.HOLDOUT_CORNER["brick"], True, 96, rng)
    foreign = tex._normal_crop(tex._source("gravel"), (0, 0), True, 96, rng)
    for _ in range(3):
        rgb, mask = tex.paint_defect(base, kind, rng, foreign)
        assert rgb.shape == (96, 96, 3) and mask.dtype == bool
        assert 0.002 < mask.mean() < 0.12
        diff = np.abs(rgb - base[..., None]).max(axis=2)
        assert diff[mask].mean() >= 0.05  # visible inside
        strong = diff > 0.1
        near = ndimage.binary_dilation(mask, iterations=4)
        assert strong[near].sum() >= 0.95 * strong.sum()  # and little change outside
        far = ~ndimage.binary_dilation(mask, iterations=16)
        assert diff[far].max() < 0.02


def test_train_crops_avoid_holdout_quadrant() -> None:
    rng = np.random.default_rng(0)
    for corner in ((256, 256), (256, 0)):
        for _ in range(300):
            c = int(rng.integers(*tex.CROP_RANGE))
            y, x = tex._crop_position(rng, c, corner, held_out=False)
            r0, c0 = corner
            overlap = y < r0 + tex.HOLDOUT and y + c > r0 and x < c0 + tex.HOLDOUT and x + c > c0
            assert not overlap
            y, x = tex._crop_position(rng, c, corner, held_out=True)
            assert r0 <= y and y + c <= r0 + tex.HOLDOUT and c0 <= x and x + c <= c0 + tex.HOLDOUT


def test_ensure_textures(tmp_path: Path) -> None:
    root = tmp_path / "tex"
    ensure_textures(root, categories=("brick",), **TINY)
    marker = root / "brick" / "train" / "good" / "000.png"
    stamp = marker.stat().st_mtime_ns
    ensure_textures(root, categories=("brick",), **TINY)
    assert marker.stat().st_mtime_ns == stamp  # same settings: nothing rewritten
    ensure_textures(root, categories=("brick", "gravel"), **TINY)
    assert marker.stat().st_mtime_ns == stamp and (root / "gravel" / "train" / "good").is_dir()
    ensure_textures(root, categories=("brick",), **dict(TINY, n_train=3))
    assert len(list((root / "brick" / "train" / "good").iterdir())) == 3
    assert not (root / "gravel").exists()

    opts = dict(n_train=3, n_test_good=1, n_test_defect_per_type=1, texture_size=48)
    ds = build_image_dataset("textures", root, "brick", "test", image_size=32, **opts)
    assert len(ds) == 5 and ds[1].image.shape == (3, 32, 32)
    with pytest.raises(ConfigError, match="brick"):
        build_image_dataset("textures", root, "wood")

    foreign = tmp_path / "users_stuff"
    (foreign / "mine").mkdir(parents=True)
    with pytest.raises(DataError, match="users_stuff"):
        ensure_textures(foreign, categories=("brick",), **TINY)
    with pytest.raises(ConfigError):
        generate_textures(tmp_path / "x", categories=("marble",))


def test_local_contrast_rule_refuses_camouflaged_defects(tmp_path: Path) -> None:
    from reconad.data.textures import LOCAL_CONTRAST, local_contrast

    rng = np.random.default_rng(0)
    stripes = np.zeros((64, 64, 3))
    stripes[:, ::2] = 1.0  # dense bright "blades" on black
    blade = np.zeros((64, 64), bool)
    blade[10:50, 28] = True  # a stroke that is one more blade: camouflaged
    assert local_contrast(stripes, blade) < LOCAL_CONTRAST
    grey = np.full((64, 64, 3), 0.5) + 0.02 * rng.normal(size=(64, 64, 3))
    dark = grey.copy()
    dark[20:30, 20:30] = 0.1  # a dark hole on a flat grey: plainly visible
    hole = np.zeros((64, 64), bool)
    hole[20:30, 20:30] = True
    assert local_contrast(dark, hole) > LOCAL_CONTRAST
    root = generate_textures(
        tmp_path / "t", categories=("grass",), image_size=64, n_train=1, n_test_good=0, n_test_defect_per_type=3
    )
    for kind in ("scratch", "hole"):
        for p in sorted((root / "grass" / "test" / kind).glob("*.png")):
            rgb = np.asarray(Image.open(p).convert("RGB"), dtype=np.float64) / 255
            mask = np.asarray(Image.open(root / "grass" / "ground_truth" / kind / f"{p.stem}_mask.png")) > 127
            assert local_contrast(rgb, mask) >= LOCAL_CONTRAST - 0.05  # 8-bit rounding of the saved PNG
