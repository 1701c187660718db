"""HFR on the one-class protocol: which image size, encoder levels, normalisation and score.

Usage (from the project root, in the project's venv):

    python benchmarks/oneclass_ablation.py '{"dataset": "fashion-mnist", "sizes": [64, 96],
        "layer_sets": [[2,3,5], [3,4,5]], "classes": null, "epochs": 20, "batch_size": 64,
        "out": "runs/oneclass-ablation.json"}'

For each image size the encoder runs once over the needed images (all stages that any
layer set uses); for each layer set one decoder per class trains on those cached
features; every score (top-1 %, mean and max of the fused map, mean of the deepest
level's residual, each under level and position normalisation) is read off the same
trained decoder, and kNN baselines on pooled features (all levels / each level) off the
same features.  Prints and writes per-class AUROC and the means.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from reconad.backbones import build_backbone
from reconad.data.class_datasets import load_one_class_set
from reconad.data.records import FeatureBatch
from reconad.engine import TrainConfig, Trainer
from reconad.engine.device import select_device
from reconad.metrics import image_auroc
from reconad.models.encoder_features import FeatureCache
from reconad.models.hfr import HFR, HFRConfig
from reconad.protocols.one_class import encode_images, knn_scores, split_validation

SCORES = ("topk", "mean", "max", "deep-mean")


def main(spec: dict) -> dict:
    data = load_one_class_set(spec.get("dataset", "fashion-mnist"), spec.get("root"))
    classes = spec.get("classes") or sorted(int(c) for c in np.unique(data.train_y))
    device = select_device(spec.get("device", "auto"))
    layer_sets = spec.get("layer_sets", [[2, 3, 5], [3, 4, 5]])
    union = sorted({s for ls in layer_sets for s in ls})
    max_train = spec.get("max_train")
    results: dict = {"spec": spec, "runs": {}}
    out = spec.get("out", "runs/oneclass-ablation.json")
    for size in spec.get("sizes", [64]):
        t0 = time.time()
        enc = build_backbone(spec.get("backbone", "efficientnet_lite0"), layers=union).to(device)
        idx = np.flatnonzero(np.isin(data.train_y, classes))
        if max_train:
            rng = np.random.default_rng(0)
            idx = np.sort(
                np.concatenate([rng.permutation(np.flatnonzero(data.train_y == c))[:max_train] for c in classes])
            )
        tr = encode_images(enc, data.train_x[idx], size, device, show=False, batch_size=256)
        te = encode_images(enc, data.test_x, size, device, show=False, batch_size=256)
        ty = data.train_y[idx]
        enc_s = time.time() - t0
        print(f"size {size}: encoded in {enc_s:.0f}s", flush=True)
        # kNN baselines: pooled over all levels, and per level
        knn: dict[str, dict[int, float]] = {"knn-all": {}}
        for s in union:
            knn[f"knn-stage{s}"] = {}
        for c in classes:
            own = np.flatnonzero(ty == c)
            y = (data.test_y != c).astype(int)
            knn["knn-all"][c] = image_auroc(y, knn_scores(tr.pooled[own], te.pooled))
            for j, s in enumerate(union):
                a = torch.nn.functional.normalize(tr.levels[j][own].mean(dim=(2, 3)), dim=1)
                b = torch.nn.functional.normalize(te.levels[j].mean(dim=(2, 3)), dim=1)
                knn[f"knn-stage{s}"][c] = image_auroc(y, knn_scores(a, b))
        res = {k: {"per_class": v, "mean": float(np.mean(list(v.values())))} for k, v in knn.items()}
        for ls in layer_sets:
            pick = [union.index(s) for s in ls]
            lv_tr = [tr.levels[j] for j in pick]
            lv_te = [te.levels[j] for j in pick]
            per: dict[str, dict[int, float]] = {}
            t1 = time.time()
            for c in classes:
                own = np.flatnonzero(ty == c)
                a, b = split_validation(len(own), 0.1, 0)
                torch.manual_seed(0)
                extra = {k: spec[k] for k in ("width", "bottleneck", "bottleneck_pool", "residual") if k in spec}
                weights = spec.get("hybrid_weights")
                if weights:  # the pooled kNN term beside the residual (scored at several weights below)
                    extra["hybrid"] = "pooled"
                model = HFR(HFRConfig(layers=ls, **extra))
                cfg = TrainConfig.from_dict(
                    {
                        "epochs": spec.get("epochs", 20),
                        "batch_size": spec.get("batch_size", 64),
                        "patience": spec.get("patience", 4),
                        "progress": False,
                        "device": spec.get("device", "auto"),
                        "lr": spec.get("lr", 1e-3),
                    }
                )
                val = FeatureCache(lv_tr).select(own[b].tolist())
                train_part = FeatureCache(lv_tr).select(own[a].tolist())
                Trainer(cfg).fit(model, train_part, val)
                y = (data.test_y != c).astype(int)
                for w in weights or []:
                    model.config.score, model.config.normalization, model.config.hybrid_weight = "deep-mean", "level", w
                    model.on_fit_end(train_part, val, device)
                    model.eval()
                    with torch.inference_mode():
                        s_w = [
                            model.predict_step(FeatureBatch([lv[i : i + 512].to(device) for lv in lv_te])).scores.cpu()
                            for i in range(0, len(y), 512)
                        ]
                    per.setdefault(f"deep-mean+knn*{w}/level", {})[c] = image_auroc(y, torch.cat(s_w).numpy())
                for norm in ("level", "position"):
                    model.config.normalization = norm
                    model.on_fit_end(train_part, val, device)
                    model.eval()
                    outs = {m: [] for m in SCORES}
                    with torch.inference_mode():
                        for i in range(0, len(y), 512):
                            feats = [lv[i : i + 512].to(device) for lv in lv_te]
                            fused, r = model.fused_map(feats)
                            for m in SCORES:
                                model.config.score = m
                                outs[m].append(model.image_score(fused, r).float().cpu())
                    for m in SCORES:
                        per.setdefault(f"{m}/{norm}", {})[c] = image_auroc(y, torch.cat(outs[m]).numpy())
            for k, v in per.items():
                res[f"layers{ls}/{k}"] = {"per_class": v, "mean": float(np.mean(list(v.values())))}
            print(f"size {size} layers {ls}: trained {len(classes)} decoders in {time.time() - t1:.0f}s", flush=True)
        for k, v in sorted(res.items(), key=lambda kv: -kv[1]["mean"]):
            print(
                f"  {size:4d} {k:40s} mean {v['mean']:.4f}  " + " ".join(f"{v['per_class'][c]:.3f}" for c in classes),
                flush=True,
            )
        results["runs"][str(size)] = {"encode_seconds": enc_s, "results": res}
        with open(out, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return results


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", nargs="?", type=json.loads, default={}, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    main(parser().parse_args().spec)
