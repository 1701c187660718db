"""HFR levers (and PatchCore settings) on one data set, encoder features computed once.

Usage (from the project root, in the project's venv):

    python benchmarks/hfr_levers.py '{"dataset": "magnetic-tile", "root": "../shared/data/magnetic-tile",
        "size": 256, "backbone": "efficientnet_lite0", "out": "runs/levers-mt.json",
        "cache": "runs/features-mt.safetensors", "levels": [2, 3, 4, 5]}' \
        '{"base": {"model": "hfr"}, "bneck": {"model": "hfr", "hybrid": "bottleneck"},
          "pc": {"model": "patchcore"}}'

The first argument names the data (any ``reconad.data`` dataset; ``category`` for the
textures / MVTec; ``size``, ``resize_mode``, or ``"geometry": "auto"`` for the choice
``Detector(geometry="auto")`` makes from the training images) and the encoder; every level any setting uses is encoded once.  The
second maps a label to a setting: ``model`` (hfr or patchcore), model options, and engine
options (``epochs``, ``lr``, ``patience``, ``batch_size``, ``seed``: the decoder's initialisation and the training order); ``save_decoder`` / ``load_decoder`` write an HFR decoder's weights (safetensors)
after training / read them instead of training; ``variants`` maps a label to
scoring-only overrides (score, hybrid, normalisation, level weights) evaluated on the same
trained decoder, so they differ from their parent by the scoring alone.  Each setting is scored the
way ``reconad test`` scores (maps upsampled to the input size; ``reconad.metrics.evaluate``):
image AUROC, pixel AUROC and PRO (with ``resize_mode`` pad or letterbox: on each image's own
pixels, on the ``eval_size`` grid of the squashed image); results are appended to ``out`` as they come.  With
``cache`` the encoder features are kept in that safetensors file and read back next
time (``levels`` adds stages to encode beyond those the settings use).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from reconad.backbones import build_backbone
from reconad.data import WITH_VAL_SPLIT, build_image_dataset, split_holdout
from reconad.data.records import FeatureBatch, ImageItem, collate_images
from reconad.engine import TrainConfig, Trainer
from reconad.metrics import evaluate
from reconad.models import build_model
from reconad.models.encoder_features import FeatureCache, encode_with_labels

#: nearest-term coresets built for the variants of one trained decoder, by (kind, budget)
BANKS: dict[Any, torch.Tensor] = {}
TRAIN_KEYS = ("epochs", "lr", "patience", "batch_size", "scheduler", "monitor", "seed")


def _layers(setting: dict[str, Any], backbone: str) -> list[int]:
    model = build_model(setting.get("model", "hfr"), backbone=backbone, layers=setting.get("layers"))
    return list(model.encoder.layers)


class Upright(Dataset):
    """``"upright": true``: every image (and mask) read at its own size and turned so that its
    long side is vertical (wide ones rotated by 90 degrees), then fitted to ``size`` by ``mode``:
    parts that come in both orientations all arrive in one frame (an experiment, not a library
    option)."""

    def __init__(self, base: Any, size: int, mode: str) -> None:
        self.base, self.size, self.mode = base, size, mode
        self.paths = base.paths

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> ImageItem:
        from reconad.data.image_io import fit_to_size

        it = self.base[i]
        image, mask = it.image, it.mask
        if image.shape[-1] > image.shape[-2]:
            image = image.rot90(1, dims=(-2, -1))
            mask = None if mask is None else mask.rot90(1, dims=(-2, -1))
        image = fit_to_size(image, self.size, self.mode).clamp(0.0, 1.0)
        if mask is not None:
            mask = (fit_to_size(mask, self.size, self.mode) >= 0.5).float()
        return ImageItem(image=image, label=it.label, mask=mask, path=it.path, defect=it.defect)


def _dataset(spec: dict[str, Any], split: str, size: int, mode: str) -> Any:
    ds, root, cat = spec["dataset"], spec["root"], spec.get("category")
    extra = {k: spec[k] for k in ("labelled_fraction",) if k in spec}
    if spec.get("upright"):
        return Upright(build_image_dataset(ds, root, cat, split, None, "resize", **extra), size, mode)
    return build_image_dataset(ds, root, cat, split, size, mode, **extra)


def _splits(spec: dict[str, Any]) -> tuple[Any, Any, Any]:
    size, mode = spec.get("size", 256), spec.get("resize_mode", "resize")
    train = _dataset(spec, "train", size, mode)
    if spec["dataset"] in WITH_VAL_SPLIT:
        val = _dataset(spec, "val", size, mode)
    else:
        train, val = split_holdout(train, 0.1, 0)
    return train, val, _dataset(spec, "test", size, mode)


def _ground_truth(test: Any) -> tuple[np.ndarray, np.ndarray]:
    labels, masks = [], []
    for b in DataLoader(test, batch_size=32, collate_fn=collate_images):
        labels.append(b.label.numpy())
        masks.append(b.mask[:, 0].numpy() > 0.5)
    return np.concatenate(labels), np.concatenate(masks)


def _select(cache: FeatureCache, union: list[int], layers: list[int]) -> FeatureCache:
    pick = [union.index(s) for s in layers]
    return FeatureCache([cache.levels[i] for i in pick], cache.labels, cache.masks)


def _valid_boxes(test: Any, size: int, mode: str, upright: bool = False) -> list[tuple[int, int, int, int]] | None:
    """Per test image, the (top, bottom, left, right) box its pixels fill at ``size`` under a
    padding ``mode`` (the rest is border); None when the mode fills the whole square."""
    if mode not in ("pad", "letterbox"):
        return None
    from PIL import Image

    from reconad.imaging import fit_plan

    boxes = []
    for path in test.paths:
        with Image.open(path) as im:
            h, w = (im.width, im.height) if upright and im.width > im.height else (im.height, im.width)
            lp, rp, tp, bp = fit_plan(h, w, size, mode).pad
        boxes.append((tp, size - bp, lp, size - rp))
    return boxes


def _to_grid(maps: torch.Tensor, size: int, boxes: list | None, offset: int, grid: int) -> np.ndarray:
    """Maps (B, h, w) at the input ``size``, cropped to each image's pixels (``boxes``) and
    brought to the ``grid`` x ``grid`` evaluation grid (the squashed image's)."""
    up = F.interpolate(maps.float().unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False)
    if boxes is None:
        if grid != size:
            up = F.interpolate(up, size=(grid, grid), mode="bilinear", align_corners=False)
        return up.squeeze(1).numpy()
    out = []
    for j in range(len(up)):
        t, b, lf, r = boxes[offset + j]
        crop = up[j : j + 1, :, t:b, lf:r]
        out.append(F.interpolate(crop, size=(grid, grid), mode="bilinear", align_corners=False)[0, 0].numpy())
    return np.stack(out)


def _evaluate(model: Any, test: FeatureCache, size: int, y: np.ndarray, gt: np.ndarray,
              boxes: list | None = None) -> dict[str, float]:  # fmt: skip
    scores, maps = [], []
    with torch.inference_mode():
        for i in range(0, len(test), 8):
            out = model.predict_step(FeatureBatch([lv[i : i + 8] for lv in test.levels]))
            scores.append(out.scores.float())
            maps.append(_to_grid(out.maps, size, boxes, i, int(gt.shape[-1])))
    m = evaluate(y, torch.cat(scores).numpy(), masks=gt, maps=np.concatenate(maps), has_masks=True)
    return {k: float(m[k]) for k in ("image_auroc", "pixel_auroc", "pro") if k in m}


def _encoded(spec: dict[str, Any], union: list[int], splits: tuple[Any, Any, Any]) -> dict[str, FeatureCache]:
    """Encoder features of the three splits, read from ``spec["cache"]`` when it holds them."""
    from safetensors.torch import load_file, save_file

    backbone = spec.get("backbone", "efficientnet_lite0")
    path = Path(spec["cache"]) if spec.get("cache") else None
    if path is not None and path.exists():
        t = load_file(str(path))
        out = {}
        for n in ("train", "val", "test"):
            levels = [t[f"{n}.{s}"] for s in union]
            masks = t.get(f"{n}.masks")
            out[n] = FeatureCache(levels, t[f"{n}.labels"], masks.half() if masks is not None else None)
        return out
    encoder = build_backbone(backbone, layers=union)
    cpu = torch.device("cpu")
    out, tensors = {}, {}
    for n, d in zip(("train", "val", "test"), splits):
        e = encode_with_labels(encoder, d, cpu, progress=False)
        out[n] = FeatureCache(e.levels, e.labels, e.masks)
        tensors.update({f"{n}.{s}": lv for s, lv in zip(union, e.levels)})
        tensors[f"{n}.labels"] = e.labels
        if e.masks is not None:
            tensors[f"{n}.masks"] = e.masks.float()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(path))
    return out


def _scorer(spec: dict[str, Any], test: Any) -> Callable[[Any, FeatureCache], dict[str, float]]:
    """Scores a model on the test features the way ``reconad test`` does.  With a padding
    ``resize_mode`` (or ``eval_size`` unlike ``size``) the maps are cropped to each image's
    own pixels and evaluated on the ``eval_size`` grid of the squashed image, so that
    geometries are compared on the same pixels (the border is not counted)."""
    size, mode = spec.get("size", 256), spec.get("resize_mode", "resize")
    grid = spec.get("eval_size", size)
    truth = test
    if mode in ("pad", "letterbox") or grid != size:
        truth = _dataset(spec, "test", grid, "resize")
    y, gt = _ground_truth(truth)
    boxes = _valid_boxes(test, size, mode, bool(spec.get("upright")))
    return lambda model, te: _evaluate(model.eval(), te, size, y, gt, boxes)


def _geometry(spec: dict[str, Any]) -> dict[str, Any]:
    """``"geometry": "auto"``: size and resize mode chosen from the training split's image
    sizes (``reconad.data.geometry``, ``size`` the largest side), as ``Detector`` does."""
    if spec.get("geometry") != "auto":
        return spec
    from reconad.data.geometry import choose_geometry, image_sizes

    train = build_image_dataset(spec["dataset"], spec["root"], spec.get("category"), "train", 64, "resize")
    choice = choose_geometry(image_sizes(train) or [], max_side=spec.get("size", 256))
    if choice.tile_size is not None:
        raise SystemExit("geometry=auto chose tiling, which this script does not run")
    print(f"# geometry=auto: {choice.reason}", flush=True)
    return {**spec, "size": choice.image_size, "resize_mode": choice.resize_mode, "eval_size": spec.get("eval_size",
            spec.get("size", 256)), "geometry_choice": choice.to_dict()}  # fmt: skip


def run(spec: dict[str, Any], settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    spec = _geometry(spec)
    backbone = spec.get("backbone", "efficientnet_lite0")
    union = sorted({s for st in settings.values() for s in _layers(st, backbone)} | set(spec.get("levels", [])))
    t0 = time.time()
    splits = _splits(spec)
    caches = _encoded(spec, union, splits)
    score = _scorer(spec, splits[2])
    print(f"# {spec} levels {union}: features in {time.time() - t0:.0f}s", flush=True)
    results: dict[str, Any] = {"spec": spec, "results": {}}
    for label, setting in settings.items():
        setting = dict(setting)
        name = setting.pop("model", "hfr")
        variants = setting.pop("variants", {})
        save, load = setting.pop("save_decoder", None), setting.pop("load_decoder", None)
        train_opts = {k: setting.pop(k) for k in TRAIN_KEYS if k in setting}
        train_opts.setdefault("epochs", spec.get("epochs", 40))
        torch.manual_seed(int(train_opts.get("seed", 0)))
        model = build_model(name, backbone=backbone, **setting)
        layers = list(model.encoder.layers)
        t1 = time.time()
        tr, va, te = (_select(caches[n], union, layers) for n in ("train", "val", "test"))
        epochs = _fit(model, tr, va, train_opts, load)
        if save:
            _save_decoder(model, save)
        row = {**score(model, te), "epochs": epochs, "seconds": time.time() - t1}
        results["results"][label] = {"setting": {"model": name, **setting, **train_opts}, **row}
        print(f"{label:24s} img {row['image_auroc']:.4f} pix {row['pixel_auroc']:.4f} pro {row.get('pro', float('nan')):.4f} "
              f"ep {row['epochs']} {row['seconds']:.0f}s", flush=True)  # fmt: skip
        BANKS.clear()
        for vlabel, overrides in variants.items():
            t2 = time.time()
            again = _rescored(model, name, backbone, {**setting, **overrides}, (tr, va))
            row = {**score(again, te), "seconds": time.time() - t2}
            results["results"][f"{label}/{vlabel}"] = {"setting": {"model": name, **setting, **overrides}, **row}
            print(f"{label + '/' + vlabel:24s} img {row['image_auroc']:.4f} pix {row['pixel_auroc']:.4f} "
                  f"pro {row.get('pro', float('nan')):.4f} (same decoder) {row['seconds']:.0f}s", flush=True)  # fmt: skip
        if spec.get("out"):
            Path(spec["out"]).parent.mkdir(parents=True, exist_ok=True)
            Path(spec["out"]).write_text(json.dumps(results, indent=1))
    return results


def _fit(model: Any, tr: FeatureCache, va: FeatureCache, train_opts: dict[str, Any], load: str | None) -> int:
    """Train ``model`` (its epochs run), or read a decoder trained earlier (``load_decoder``: 0)."""
    if load is None:
        cfg = TrainConfig(progress=False, device="cpu", **{**model.train_defaults, **train_opts})
        return int(Trainer(cfg).fit(model, tr, va).epochs_run)
    from safetensors.torch import load_file

    model.decoder.load_state_dict(load_file(load))
    model.on_fit_end(tr, va, torch.device("cpu"))
    return 0


def _save_decoder(model: Any, path: str) -> None:
    from safetensors.torch import save_file

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.decoder.state_dict().items()}, path)


def _rescored(trained: Any, name: str, backbone: str, setting: dict[str, Any], splits: tuple) -> Any:
    """A scoring-only variant: the trained decoder under another score / hybrid / normalisation
    (its statistics refitted), or PatchCore's memory bank under another score."""
    model = build_model(name, backbone=backbone, **setting)
    if name == "patchcore":
        model.load_trainable_state_dict(trained.trainable_state_dict())
        return model
    model.decoder.load_state_dict(trained.decoder.state_dict())
    term = model.nearest
    key = None if term is None else (term.kind, term.budget)
    if term is not None and key in BANKS:  # the same coreset of the same training vectors: kept
        term.fit_bank = lambda vectors, seed=0: setattr(term, "bank", BANKS[key].clone())  # type: ignore[method-assign]
    model.on_fit_end(splits[0], splits[1], torch.device("cpu"))
    if term is not None:
        BANKS[key] = term.bank
    return model


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", type=json.loads, help="the data and the encoder, a JSON object (see the docstring)")
    ap.add_argument("settings", type=json.loads, help="label -> setting, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    args = parser().parse_args()
    torch.set_num_threads(int(args.spec.get("threads", 2)))
    run(args.spec, args.settings)
