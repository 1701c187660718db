"""Image datasets: MVTec AD layout, plain folders, magnetic tile, generated textures.

Every dataset yields ``ImageItem`` records (image (3, H, W) float in [0, 1], label,
mask (1, H, W) {0, 1} or None, path, defect name); ``collate_images`` batches them.

``build_image_dataset(name, root, ...)`` picks a dataset by name:

* ``"mvtec"``: ``MVTecDataset(root, category, split)``; split "train" or "test".
* ``"textures"``: the generated texture data (brick, grass, gravel) under ``root``,
  generated on first use by ``ensure_textures``; then read like "mvtec".  Generator
  options (``n_train``, ``n_test_good``, ``n_test_defect_per_type``, ``seed``,
  ``texture_size``: the stored image size, default 256) go in ``kwargs``.
* ``"magnetic-tile"``: ``MagneticTileDataset(root, split)``; split "train", "val" or
  "test" (``seed`` and ``labelled_fraction`` in ``kwargs``).  ``category`` is ignored.
* ``"folder"``: ``FolderDataset`` from ``normal_dir`` / ``normal_test_dir`` /
  ``abnormal_dir`` / ``mask_dir`` in ``kwargs``; or, without them, from sub-folders of
  ``root``: normal images in ``good`` or ``normal``, normal test images (optional) in
  ``good_test`` or ``normal_test``, anomalous ones in ``defect``, ``abnormal`` or
  ``anomaly``, masks in ``mask``, ``masks`` or ``ground_truth``.  ``split="train"`` reads
  normal images only; ``split="test"`` reads normal and anomalous ones.  Train and test
  never share an image: the normal test images are the separate folder when there is
  one, otherwise a fixed seeded 20 % of the normal folder that training leaves out
  (``reconad.data.folder.split_normals``; ``test_share`` and ``split_seed`` in
  ``kwargs``; refused with fewer than 5 normal images).  ``category`` is ignored.

Only magnetic-tile has a "val" split; for the others hold out normals from the
training set with ``split_holdout`` (``train_val_datasets`` does the right thing for
every name).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from reconad.data.base import ImageListDataset, SampleRecord, split_holdout
from reconad.data.folder import TEST_SHARE, FolderDataset, split_normals
from reconad.data.image_io import IMAGE_EXTENSIONS, RESIZE_MODES, list_images, load_image, load_mask
from reconad.data.magnetic_tile import MagneticTileDataset
from reconad.data.mvtec import MVTecDataset, list_categories
from reconad.data.records import ImageBatch, ImageItem, collate_images
from reconad.data.textures import TEXTURE_CATEGORIES, ensure_textures, generate_textures
from reconad.errors import ConfigError, DataError

__all__ = [
    "DATASETS",
    "WITH_VAL_SPLIT",
    "build_image_dataset",
    "train_val_datasets",
    "split_holdout",
    "ImageListDataset",
    "SampleRecord",
    "MVTecDataset",
    "FolderDataset",
    "MagneticTileDataset",
    "list_categories",
    "generate_textures",
    "ensure_textures",
    "TEXTURE_CATEGORIES",
    "IMAGE_EXTENSIONS",
    "RESIZE_MODES",
    "list_images",
    "load_image",
    "load_mask",
    "ImageItem",
    "ImageBatch",
    "collate_images",
]

DATASETS: tuple[str, ...] = ("mvtec", "folder", "magnetic-tile", "textures")
#: datasets that define their own held-out normal ("val") split
WITH_VAL_SPLIT: tuple[str, ...] = ("magnetic-tile",)

_TEXTURE_OPTIONS = ("n_train", "n_test_good", "n_test_defect_per_type", "seed")
_FOLDER_NORMAL = ("good", "normal")
_FOLDER_NORMAL_TEST = ("good_test", "normal_test")
_FOLDER_ABNORMAL = ("defect", "abnormal", "anomaly")
_FOLDER_MASKS = ("mask", "masks", "ground_truth")


def _no_extra(name: str, kwargs: dict[str, Any]) -> None:
    if kwargs:
        raise ConfigError(f"unknown option(s) for dataset {name!r}: {', '.join(sorted(kwargs))}")


def _first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def _need_root(name: str, root: str | os.PathLike[str] | None) -> Path:
    if root is None:
        raise ConfigError(f"dataset {name!r} needs a root folder")
    return Path(root)


def _mvtec_split(name: str, split: str) -> None:
    if split == "val":
        raise ConfigError(
            f"dataset {name!r} has no 'val' split; hold out normals with "
            "split_holdout(train_dataset) or use train_val_datasets()"
        )


def _folder_dirs(root: str | os.PathLike[str] | None, dirs: dict[str, Any]) -> dict[str, Any]:
    """The folder layout's folders: the ones given, or else the sub-folders of ``root``."""
    if any(v is not None for v in dirs.values()):
        return dirs
    base = _need_root("folder", root)
    if not base.is_dir():
        raise DataError(f"dataset root not found: {base}")
    found = {
        "normal_dir": _first_dir(base, _FOLDER_NORMAL),
        "normal_test_dir": _first_dir(base, _FOLDER_NORMAL_TEST),
        "abnormal_dir": _first_dir(base, _FOLDER_ABNORMAL),
        "mask_dir": _first_dir(base, _FOLDER_MASKS),
    }
    if found["normal_dir"] is None and found["abnormal_dir"] is None:
        raise DataError(f"no image folders in {base}: expected one of {', '.join(_FOLDER_NORMAL + _FOLDER_ABNORMAL)}")
    return found


def _folder_dataset(
    root: str | os.PathLike[str] | None,
    split: str,
    image_size: int | tuple[int, int] | None,
    resize_mode: str,
    cache: bool,
    kwargs: dict[str, Any],
) -> FolderDataset:
    """The ``folder`` layout: explicit folders or sub-folders of ``root``; train and test
    never share a normal image (a separate normal test folder, or ``split_normals``)."""
    name = "folder"
    dirs = {k: kwargs.pop(k, None) for k in ("normal_dir", "normal_test_dir", "abnormal_dir", "mask_dir")}
    share, seed = float(kwargs.pop("test_share", TEST_SHARE)), int(kwargs.pop("split_seed", 0))
    _no_extra(name, kwargs)
    _mvtec_split(name, split)
    if split not in ("train", "test"):
        raise ConfigError(f"unknown split {split!r} for dataset 'folder'; choose train or test")
    dirs = _folder_dirs(root, dirs)
    normal, normal_test = dirs.pop("normal_dir"), dirs.pop("normal_test_dir")
    files: list[Path] | None = None
    if split == "train":
        if normal is None:
            raise DataError(f"no normal-image folder for training (root: {root})")
        files = None if normal_test is not None else split_normals(normal, share, seed)["train"]
        dirs = {"abnormal_dir": None, "mask_dir": None}
    elif normal_test is not None:
        normal = normal_test
    elif normal is not None:
        files = split_normals(normal, share, seed)["test"]
    return FolderDataset(
        normal, image_size=image_size, resize_mode=resize_mode, cache=cache, normal_files=files, **dirs
    )


def build_image_dataset(
    name: str,
    root: str | os.PathLike[str] | None,
    category: str | None = None,
    split: str = "train",
    image_size: int | tuple[int, int] | None = 256,
    resize_mode: str = "resize",
    **kwargs: Any,
) -> ImageListDataset:
    """Build the dataset ``name`` (one of ``DATASETS``); see the module docstring."""
    kwargs = dict(kwargs)
    cache = bool(kwargs.pop("cache", False))
    if name == "mvtec":
        _no_extra(name, kwargs)
        _mvtec_split(name, split)
        root = _need_root(name, root)
        if category is None:
            present = ", ".join(list_categories(root)) or "none"
            raise ConfigError(f"dataset 'mvtec' needs a category; present in {root}: {present}")
        return MVTecDataset(root, category, split, image_size, resize_mode, cache=cache)
    if name == "textures":
        opts = {k: kwargs.pop(k) for k in _TEXTURE_OPTIONS if k in kwargs}
        texture_size = int(kwargs.pop("texture_size", 256))
        _no_extra(name, kwargs)
        _mvtec_split(name, split)
        root = _need_root(name, root)
        if category not in TEXTURE_CATEGORIES:
            raise ConfigError(
                f"dataset 'textures' needs a category, one of {', '.join(TEXTURE_CATEGORIES)}; got {category!r}"
            )
        ensure_textures(root, image_size=texture_size, **opts)
        return MVTecDataset(root, category, split, image_size, resize_mode, cache=cache)
    if name == "magnetic-tile":
        seed = int(kwargs.pop("seed", 0))
        fraction = float(kwargs.pop("labelled_fraction", 0.0) or 0.0)
        _no_extra(name, kwargs)
        return MagneticTileDataset(
            _need_root(name, root), split, image_size, seed, resize_mode, cache=cache, labelled_fraction=fraction
        )
    if name == "folder":
        return _folder_dataset(root, split, image_size, resize_mode, cache, kwargs)
    raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def train_val_datasets(
    name: str,
    root: str | os.PathLike[str] | None,
    category: str | None = None,
    image_size: int | tuple[int, int] | None = 256,
    resize_mode: str = "resize",
    val_fraction: float = 0.1,
    val_seed: int = 0,
    **kwargs: Any,
) -> tuple[Dataset, Dataset]:
    """(train, val) normal data: magnetic-tile's own "val" split when the dataset has
    one, otherwise ``split_holdout(train, val_fraction, val_seed)``."""
    train = build_image_dataset(name, root, category, "train", image_size, resize_mode, **kwargs)
    if name in WITH_VAL_SPLIT:
        val = build_image_dataset(name, root, category, "val", image_size, resize_mode, **kwargs)
        return train, val
    return split_holdout(train, val_fraction, val_seed)
