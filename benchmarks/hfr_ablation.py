"""HFR ablation: encoder features computed once, several decoder settings compared.

Usage (from the project root, in the project's venv):

    python benchmarks/hfr_ablation.py '{"dataset": "textures", "root": "demo-data/textures",
        "category": "grass", "layers": null, "size": 256, "epochs": 30,
        "backbone": "efficientnet_lite0"}' \
        '{"base": {}, "noise0.5": {"feature_noise": 0.5}, "ep80": {"epochs": 80, "patience": null}}'

The first argument names the data (any ``reconad.data`` dataset) and the encoder
layers; the second maps a label to HFR options (``epochs``, ``lr``, ``patience``,
``batch_size`` go to the engine).  For each setting it prints image AUROC (max / top-1%
score) and pixel AUROC of the fused map under four level weightings: equal, the two
deepest levels, the deepest alone, and 1/2/4.  Pixel AUROC is measured at the finest
feature resolution (masks area-downsampled), so it is comparable between settings but
not identical to ``reconad test``'s full-resolution figure.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from reconad.data import WITH_VAL_SPLIT, build_image_dataset, split_holdout
from reconad.data.records import collate_images
from reconad.engine import TrainConfig, Trainer
from reconad.metrics import image_auroc, pixel_auroc
from reconad.models.hfr import HFR, HFRConfig

TRAIN_KEYS = ("epochs", "lr", "patience", "batch_size")


def run(
    dataset: str,
    root: str,
    category: str | None,
    size: int,
    layers: list[int] | None,
    configs: dict[str, dict],
    epochs: int = 30,
    backbone: str = "efficientnet_lite0",
) -> None:
    train = build_image_dataset(dataset, root, category, "train", size)
    if dataset in WITH_VAL_SPLIT:
        val = build_image_dataset(dataset, root, category, "val", size)
    else:
        train, val = split_holdout(train, 0.1, 0)
    test = build_image_dataset(dataset, root, category, "test", size)
    cpu = torch.device("cpu")
    base = HFR(HFRConfig(backbone=backbone, layers=layers))
    t0 = time.time()
    ftr, fva, fte = (base.prepare_data(d, cpu, progress=False) for d in (train, val, test))
    labels, masks = [], []
    for b in DataLoader(test, batch_size=32, collate_fn=collate_images):
        labels.append(b.label.numpy())
        masks.append(b.mask[:, 0] > 0.5)
    y = np.concatenate(labels)
    gt = torch.cat(masks)
    print(
        f"# {dataset}/{category} {backbone} size {size} layers {layers}: features {time.time() - t0:.0f}s", flush=True
    )
    for name, cfg in configs.items():
        cfg = dict(cfg)
        train_opts = {k: cfg.pop(k) for k in TRAIN_KEYS if k in cfg}
        train_opts.setdefault("epochs", epochs)
        torch.manual_seed(0)
        model = HFR(HFRConfig(backbone=backbone, layers=layers, **cfg))
        t0 = time.time()
        hist = Trainer(TrainConfig(progress=False, device="cpu", **train_opts)).fit(model, ftr, fva)
        seconds = time.time() - t0
        per_level: list[list[torch.Tensor]] = []
        with torch.inference_mode():
            for b in DataLoader(fte, batch_size=16, collate_fn=model.collate_fn()):
                feats = b.levels
                res = model.level_residuals(feats, model.decode(feats))
                per_level.append([model.normalise(r, i) for i, r in enumerate(res)])
        levels = [torch.cat([p[i] for p in per_level]) for i in range(len(per_level[0]))]
        grid = max((lv.shape[-2:] for lv in levels), key=lambda s: s[0] * s[1])
        up = [
            F.interpolate(lv.unsqueeze(1), size=grid, mode="bilinear", align_corners=False).squeeze(1) for lv in levels
        ]
        gt_grid = F.interpolate(gt[:, None].float(), size=grid, mode="area").squeeze(1).numpy() > 0.25
        k = len(up)
        cells = []
        for label, w in (
            ("equal", [1] * k),
            ("deep2", [0] * (k - 2) + [1, 1]),
            ("deepest", [0] * (k - 1) + [1]),
            ("1/2/4", [2**i for i in range(k)]),
        ):
            fused = model.smooth(sum(wi * u for wi, u in zip(w, up)) / sum(w))
            flat = fused.flatten(1)
            top = flat.topk(max(1, flat.shape[1] // 100), dim=1).values.mean(1)
            cells.append(
                f"{label}: img {image_auroc(y, flat.amax(1).numpy()):.3f}/{image_auroc(y, top.numpy()):.3f}"
                f" pix {pixel_auroc(gt_grid, fused.numpy()):.3f}"
            )
        print(f"{name:14s} ep{hist.epochs_run} {seconds:.0f}s | " + " | ".join(cells), flush=True)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", type=json.loads, help="the data and the encoder, a JSON object (see the docstring)")
    ap.add_argument("settings", type=json.loads, help="label -> setting, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    args = parser().parse_args()
    torch.set_num_threads(2)
    spec = args.spec
    run(
        spec["dataset"],
        spec["root"],
        spec.get("category"),
        spec.get("size", 256),
        spec.get("layers"),
        args.settings,
        spec.get("epochs", 30),
        spec.get("backbone", "efficientnet_lite0"),
    )
