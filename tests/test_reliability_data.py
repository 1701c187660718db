"""Reliability of the data side: masks stored as 0/1, strict JSON with reasons for undefined
metrics, train / held-out / test disjoint for every layout, and warnings that name files.

Fixtures are tiny trees in each layout (24-32 px); one tiny ``ae`` run (1 epoch) is trained
once per module on the folder layout and tested in-process with the PyTorch engine.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reconad.data import FolderDataset, MagneticTileDataset, build_image_dataset, load_mask, train_val_datasets
from reconad.data.base import check_disjoint, dataset_paths
from reconad.errors import DataError
from reconad.jsonfile import dumps, write_json

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE = 32
N_NORMAL = 12


def _png(path: Path, arr: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)
    return path


def _strict(text: str) -> Any:
    """Parse JSON the way strict readers do: a bare NaN / Infinity is an error."""

    def refuse(word: str) -> Any:
        raise ValueError(f"not JSON: {word}")

    return json.loads(text, parse_constant=refuse)


def _square_mask(value: int, dtype: Any = np.uint8, size: int = SIZE) -> np.ndarray:
    m = np.zeros((size, size), dtype)
    m[8:16, 8:16] = value
    return m


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory) -> Path:
    """Folder layout: good/ (12 normals), defect/ (3, a bright square), masks/ stored as 0/1."""
    root = tmp_path_factory.mktemp("folder") / "parts"
    rng = np.random.default_rng(0)
    for i in range(N_NORMAL):
        _png(root / "good" / f"n{i:02d}.png", rng.integers(100, 140, (SIZE, SIZE, 3), dtype=np.uint8))
    for i in range(3):
        img = rng.integers(100, 140, (SIZE, SIZE, 3), dtype=np.uint8)
        img[8:16, 8:16] = 255
        _png(root / "defect" / f"d{i}.png", img)
        _png(root / "masks" / f"d{i}_mask.png", _square_mask(1))
    return root


@pytest.fixture(scope="module")
def folder_run(folder_root, tmp_path_factory) -> Path:
    from reconad.data.spec import DataSpec
    from reconad.runs import train_run

    out = tmp_path_factory.mktemp("run") / "run"
    spec = DataSpec("folder", str(folder_root), image_size=SIZE)
    train_run(spec, out, model="ae", epochs=1, batch_size=8, device="cpu", progress=False, val_fraction=0.25)
    return out


@pytest.fixture()
def mt_root(tmp_path: Path) -> Path:
    """Magnetic tile: 10 Free, 2 Crack with 0/255 masks."""
    root = tmp_path / "mt"
    rng = np.random.default_rng(1)
    for cls, n in (("Free", 10), ("Crack", 2)):
        for i in range(n):
            img = root / f"MT_{cls}" / "Imgs" / f"exp_{cls}_{i}.jpg"
            img.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (20, 24), dtype=np.uint8)).save(img)
            _png(
                img.with_suffix(".png"), np.zeros((20, 24), np.uint8) if cls == "Free" else _square_mask(255)[:20, :24]
            )
    return root


def _copy(root: Path, tmp_path: Path) -> Path:
    dst = tmp_path / root.name
    shutil.copytree(root, dst)
    return dst


# --------------------------------------------------------------------------- mask values


def test_zero_one_masks_read_like_zero_255_masks(tmp_path: Path) -> None:
    ref = load_mask(_png(tmp_path / "m255.png", _square_mask(255)), SIZE)
    assert ref.sum() == 64
    stored = {
        "m01.png": _square_mask(1),
        "m01_16bit.png": _square_mask(1, np.uint16),
        "m65535.png": _square_mask(65535, np.uint16),
        "mbool.png": _square_mask(True, np.bool_),
    }
    for name, arr in stored.items():
        path = _png(tmp_path / name, arr)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # none of these is read as empty
            for size in (SIZE, 16, (12, 20)):
                assert (load_mask(path, size) == load_mask(tmp_path / "m255.png", size)).all(), (name, size)
    assert load_mask(tmp_path / "m01.png", SIZE).sum() == ref.sum()


def test_a_non_empty_mask_that_reads_empty_warns_naming_it(tmp_path: Path) -> None:
    path = _png(tmp_path / "labels3.png", _square_mask(3))
    with pytest.warns(UserWarning, match=r"labels3.png has non-zero pixels.*largest 3.*read as empty"):
        mask = load_mask(path, SIZE)
    assert mask.sum() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_mask(_png(tmp_path / "empty.png", _square_mask(0)), SIZE).sum() == 0  # truly empty: quiet


# --------------------------------------------------------------------------- strict JSON


def test_json_writer_turns_non_finite_values_into_null(tmp_path: Path) -> None:
    value = {
        "nan": float("nan"),
        "inf": [math.inf, -math.inf, 1.5],
        "numpy": {"f32": np.float32("nan"), "f64": np.float64(2.0), "i": np.int64(3)},
        "array": np.array([1.0, np.nan]),
        ("tuple", 1): (np.float32(0.5),),
    }
    text = write_json(tmp_path / "x.json", value).read_text()
    assert "NaN" not in text and "Infinity" not in text
    doc = _strict(text)
    assert doc["nan"] is None and doc["inf"] == [None, None, 1.5] and doc["array"] == [1.0, None]
    assert doc["numpy"] == {"f32": None, "f64": 2.0, "i": 3} and doc["('tuple', 1)"] == [0.5]
    assert _strict(dumps({"a": math.nan})) == {"a": None}
    assert not list(tmp_path.glob("*.tmp"))  # written through a temporary sibling, then renamed


def test_history_with_an_infinite_best_value_survives_strict_json() -> None:
    from reconad.engine.trainer import TrainHistory

    back = TrainHistory.from_dict(_strict(dumps(TrainHistory().to_dict())))  # monitor none: best_val stays inf
    assert back.best_val == math.inf


def test_metrics_json_has_pixel_metrics_for_01_masks_and_null_with_a_reason_without_defect_pixels(
    folder_run: Path, folder_root: Path, tmp_path: Path
) -> None:
    from reconad.data.spec import DataSpec
    from reconad.runs import evaluate_run

    metrics = evaluate_run(folder_run, engine="torch")
    doc = _strict((folder_run / "metrics.json").read_text())
    assert 0.0 <= doc["pixel_auroc"] <= 1.0 and 0.0 <= doc["pro"] <= 1.0  # the 0/1 masks count
    assert "undefined" not in doc and math.isfinite(metrics["pixel_auroc"])

    empty = _copy(folder_root, tmp_path)
    for mask in (empty / "masks").iterdir():
        _png(mask, _square_mask(0))
    with pytest.warns(UserWarning, match=r"pixel metrics undefined: no defect pixels in the masks of the 3"):
        evaluate_run(folder_run, DataSpec("folder", str(empty), image_size=SIZE), engine="torch")
    doc = _strict((folder_run / "metrics.json").read_text())
    assert doc["pixel_auroc"] is None and doc["pro"] is None
    assert set(doc["undefined"]) == {"pixel_auroc", "pro"} and "no defect pixels" in doc["undefined"]["pro"]
    assert doc["image_auroc"] is not None


# --------------------------------------------------------------------------- disjoint splits


TEXTURE_OPTIONS = {"texture_size": 32, "n_train": 10, "n_test_good": 2, "n_test_defect_per_type": 1}


def _layout(name: str, tiny_mvtec: Path, folder_root: Path, mt_root: Path, tmp_path: Path) -> dict[str, Any]:
    """build_image_dataset's arguments for one small set in each layout."""
    if name == "mvtec":
        return {"name": "mvtec", "root": tiny_mvtec, "category": "brick"}
    if name == "textures":
        return {"name": "textures", "root": tmp_path / "tex", "category": "grass", **TEXTURE_OPTIONS}
    if name == "magnetic-tile":
        return {"name": "magnetic-tile", "root": mt_root}
    return {"name": "folder", "root": folder_root}


@pytest.mark.parametrize("layout", ["mvtec", "textures", "magnetic-tile", "folder"])
def test_train_held_out_and_test_are_disjoint_for_every_layout(
    layout: str, tiny_mvtec: Path, folder_root: Path, mt_root: Path, tmp_path: Path
) -> None:
    from reconad import Detector
    from reconad.data import WITH_VAL_SPLIT

    where = _layout(layout, tiny_mvtec, folder_root, mt_root, tmp_path)
    train = build_image_dataset(split="train", image_size=SIZE, **where)
    val = build_image_dataset(split="val", image_size=SIZE, **where) if layout in WITH_VAL_SPLIT else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing-mask warnings are not the point here
        test = build_image_dataset(split="test", image_size=SIZE, **where)
    det = Detector("ae", image_size=SIZE, val_fraction=0.25, device="cpu", progress=False)
    det._resolve()
    fit_train, held_out, _ = det._split(train, None, val)  # what fit() trains and calibrates on
    assert held_out is not None
    parts = {"train": dataset_paths(fit_train), "held-out": dataset_paths(held_out), "test": dataset_paths(test)}
    assert all(parts.values()), parts
    assert [p for p, y in zip(parts["test"], test.labels) if y == 0]  # the test split does test normals
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not set(parts[a]) & set(parts[b]), f"{layout}: {a} and {b} share images"
    tr, va = train_val_datasets(image_size=SIZE, **where)
    split = [set(dataset_paths(d) or []) for d in (tr, va)]
    assert split[0] and split[1] and not split[0] & split[1]
    assert not (split[0] | split[1]) & set(parts["test"])


def test_folder_normals_split_by_a_fixed_share_with_a_separate_test_folder_preferred(tmp_path: Path) -> None:
    root = tmp_path / "f"
    for i in range(10):
        _png(root / "good" / f"n{i}.png", np.zeros((8, 8), np.uint8))
    _png(root / "defect" / "d.png", np.zeros((8, 8), np.uint8))
    train = build_image_dataset("folder", root, split="train", image_size=8)
    test = build_image_dataset("folder", root, split="test", image_size=8)
    assert (len(train), test.labels) == (8, [0, 0, 1])  # 20 % of 10 normals go to test
    assert not set(train.paths) & set(test.paths) and len(set(train.paths) | set(test.paths)) == 11
    assert build_image_dataset("folder", root, split="test", image_size=8).paths == test.paths  # fixed
    other = [build_image_dataset("folder", root, split="test", image_size=8, split_seed=s).paths for s in (1, 2, 3)]
    assert any(p != test.paths for p in other)

    _png(root / "good_test" / "t0.png", np.zeros((8, 8), np.uint8))  # a separate normal test folder wins
    assert len(build_image_dataset("folder", root, split="train", image_size=8)) == 10
    assert build_image_dataset("folder", root, split="test", image_size=8).paths[0].endswith("good_test/t0.png")
    explicit = build_image_dataset(
        "folder", None, split="test", image_size=8, normal_dir=root / "good", normal_test_dir=root / "good_test"
    )
    assert explicit.labels == [0]

    few = tmp_path / "few"
    for i in range(3):
        _png(few / "good" / f"n{i}.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=r"only 3 normal image\(s\) in .*few/good: at least 5 .*good_test"):
        build_image_dataset("folder", few, split="train", image_size=8)


def test_a_test_split_that_training_reads_is_refused_before_training(folder_root: Path, tmp_path: Path) -> None:
    from reconad.data.spec import DataSpec
    from reconad.runs import train_run

    spec = DataSpec("folder", str(folder_root), image_size=SIZE, labelled_anomalies=str(folder_root / "defect"))
    with pytest.raises(DataError, match=r"test split shares 3 image\(s\) with the training data.*d0.png"):
        train_run(spec, tmp_path / "run", model="esad", epochs=1, device="cpu", progress=False)
    assert not (tmp_path / "run" / "model").exists()
    ds = FolderDataset(folder_root / "good", image_size=8)
    from torch.utils.data import ConcatDataset, Subset

    check_disjoint(Subset(ds, [0, 1]), Subset(ds, [2, 3]))  # disjoint parts pass
    with pytest.raises(DataError, match="n01.png"):
        check_disjoint(ConcatDataset([Subset(ds, [0, 1])]), Subset(ds, [1, 5]))


# --------------------------------------------------------------------------- warnings that name files


def test_a_missing_mask_warning_names_the_expected_mask_path(folder_root: Path, mt_root: Path, tmp_path: Path) -> None:
    root = _copy(folder_root, tmp_path)
    (root / "masks" / "d1_mask.png").unlink()
    expected = root / "masks" / "d1_mask.png"
    with pytest.warns(UserWarning, match=rf"expected {expected} for {root / 'defect' / 'd1.png'}"):
        FolderDataset(root / "good", root / "defect", root / "masks", image_size=8)
    (mt_root / "MT_Crack" / "Imgs" / "exp_Crack_1.png").unlink()
    with pytest.warns(UserWarning, match=r"expected .*MT_Crack/Imgs/exp_Crack_1.png for .*exp_Crack_1.jpg"):
        MagneticTileDataset(mt_root, "test", image_size=8)


def test_the_cli_prints_a_warning_as_one_line_without_the_source_line(
    folder_run: Path, folder_root: Path, tmp_path: Path, capsys
) -> None:
    from reconad.cli import main

    root = _copy(folder_root, tmp_path)
    (root / "masks" / "d2_mask.png").unlink()
    before = warnings.formatwarning
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = lambda m, c, f, n, file=None, line=None: sys.stderr.write(  # Python's own path
            warnings.formatwarning(m, c, f, n, line)
        )
        rc = main(["test", str(folder_run), "--dataset", "folder", "--root", str(root), "--heatmaps", "0",
                   "--no-report", "--engine", "torch", "--quiet"])  # fmt: skip
    assert rc == 0 and warnings.formatwarning is before  # restored after the command
    err = capsys.readouterr().err
    expected = root / "masks" / "d2_mask.png"
    lines = [ln for ln in err.splitlines() if "no mask file" in ln]
    assert len(lines) == 1 and lines[0].startswith("reconad: warning: 1 anomalous image(s) have no mask file")
    assert f"expected {expected} for {root / 'defect' / 'd2.png'}" in lines[0]
    assert ".py:" not in err and "warnings.warn" not in err and "UserWarning" not in err
