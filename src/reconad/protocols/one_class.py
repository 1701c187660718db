"""The one-class protocol of the papers (HFR, MemAE, ESAD, GEOM, ...).

Each class in turn is "normal": a model trains on that class's training images only and
is scored on the whole test set (that class = 0, every other class = 1 anomalous);
the table gives the image AUROC per class and the mean.

HFR's encoder is frozen, so its features of every training and test image are computed
once and shared by the ten per-class models (only the decoders train).  The same
features give the baseline beside it: k-nearest-neighbour distance on the encoder's
globally pooled features (DN2, Bergman et al. 2020), so the table shows what the
reconstruction adds.  Other models train through the Detector on the images.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reconad.data.inputs import ArrayImageDataset
from reconad.data.oneclass import OneClassData, load_one_class_set
from reconad.engine import TrainConfig, Trainer
from reconad.engine.device import select_device
from reconad.errors import ConfigError
from reconad.metrics import image_auroc
from reconad.runs import format_table

#: Published one-class mean AUROCs, quoted from the cited papers; NOT reproduced here.
PUBLISHED: dict[str, list[tuple[str, float]]] = {
    "fashion-mnist": [
        ("GEOM, Golan & El-Yaniv, NeurIPS 2018", 0.935),
        ("ESAD without labels, Huang et al., arXiv 2012.04905", 0.940),
        ("CSI, Tack et al., NeurIPS 2020", 0.942),
        ("Mean-Shifted Contrastive Loss, Reiss & Hoshen, AAAI 2023", 0.942),
        ("Transformaly, Cohen & Avidan, CVPR-W 2022", 0.944),
    ],
    "mnist": [
        ("MemAE, Gong et al., ICCV 2019", 0.9751),
        ("GEOM, Golan & El-Yaniv, NeurIPS 2018", 0.980),
        ("ESAD without labels, Huang et al., arXiv 2012.04905", 0.985),
    ],
    "cifar10": [
        ("MemAE, Gong et al., ICCV 2019", 0.6088),
        ("GEOM, Golan & El-Yaniv, NeurIPS 2018", 0.860),
        ("CSI, Tack et al., NeurIPS 2020", 0.943),
    ],
}
PUBLISHED["mnist-10k"] = PUBLISHED["mnist"]  # full-MNIST figures, for orientation only

#: HFR settings for semantic (whole-image) anomalies; measured in BENCHMARKS.md §one-class.
HFR_ONE_CLASS_DEFAULTS: dict[str, Any] = {"score": "deep-mean", "layers": [4, 5, 6]}
HFR_ONE_CLASS_IMAGE_SIZE = 64
#: Engine settings for the per-class decoders (thousands of small feature maps per class).
HFR_ONE_CLASS_TRAIN: dict[str, Any] = {"epochs": 15, "batch_size": 128, "patience": 4}
KNN_K = 2


@dataclass
class EncodedSet:
    """Per-level encoder features of a set of images, and their pooled, L2-normalised vectors."""

    levels: list[torch.Tensor]
    pooled: torch.Tensor


def encode_images(
    encoder: torch.nn.Module,
    images: np.ndarray,
    image_size: int,
    device: torch.device,
    batch_size: int = 64,
    show: bool = True,
    desc: str = "encoding",
) -> EncodedSet:
    """Run the frozen encoder over ``images`` (resized as the Detector would)."""
    from reconad.models.hfr.model import encode_dataset

    levels = encode_dataset(
        encoder, ArrayImageDataset(images, image_size), device, batch_size=batch_size, progress=show, desc=desc
    )
    pooled = torch.cat([lv.mean(dim=(2, 3)) for lv in levels], dim=1)
    pooled = torch.nn.functional.normalize(pooled, dim=1)
    return EncodedSet(levels, pooled)


def knn_scores(train: torch.Tensor, test: torch.Tensor, k: int = KNN_K, chunk: int = 2048) -> np.ndarray:
    """Mean distance of each test vector to its ``k`` nearest training vectors."""
    k = min(k, len(train))
    out = []
    for i in range(0, len(test), chunk):
        d = torch.cdist(test[i : i + chunk], train)
        out.append(d.topk(k, dim=1, largest=False).values.mean(dim=1))
    return torch.cat(out).numpy()


def _split_val(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fraction * n)) if n >= 10 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def _select(levels: list[torch.Tensor], idx: np.ndarray) -> list[torch.Tensor]:
    t = torch.as_tensor(idx, dtype=torch.long)
    return [lv.index_select(0, t) for lv in levels]


def labelled_anomalies(data: OneClassData, normal_class: int, n_normal: int, ratio: float, seed: int) -> np.ndarray:
    """Indices of ``a`` training images of other classes, with ratio = a / (n + a) (ESAD's gamma).

    Drawn uniformly at random (seeded) from the training images of all other classes.
    """
    if ratio <= 0:
        return np.zeros(0, dtype=np.int64)
    if ratio >= 1:
        raise ConfigError(f"the labelled-anomaly ratio must be in [0, 1), got {ratio}")
    a = int(round(ratio * n_normal / (1.0 - ratio)))
    others = np.flatnonzero(data.train_y != normal_class)
    rng = np.random.default_rng(seed + 1000 + normal_class)
    return np.sort(rng.choice(others, size=min(a, len(others)), replace=False))


def _model_uses_labels(model: str) -> bool:
    from reconad.models import model_entry

    return bool(getattr(model_entry(model)[0], "uses_labels", False))


def _split_options(model: str, options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    from reconad.models import model_config_fields

    model_keys = model_config_fields(model)
    train_keys = TrainConfig.field_names()
    unknown = set(options) - model_keys - train_keys
    if unknown:
        raise ConfigError(f"unknown option(s) for {model} in the one-class protocol: {', '.join(sorted(unknown))}")
    return (
        {k: v for k, v in options.items() if k in model_keys},
        {k: v for k, v in options.items() if k in train_keys},
    )


def _run_hfr(
    data: OneClassData, classes: list[int], image_size: int, options: dict[str, Any], val_fraction: float, echo: bool
) -> tuple[dict, dict, dict, dict[str, Any]]:
    from reconad.models import build_model

    model_opts, train_opts = _split_options("hfr", {**HFR_ONE_CLASS_DEFAULTS, **HFR_ONE_CLASS_TRAIN, **options})
    train_opts.setdefault("progress", False)
    show = bool(options.get("progress", echo))
    cfg = TrainConfig.from_dict(train_opts)
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    encoder = build_model("hfr", **model_opts).encoder.to(device)
    if image_size < 2 * max(encoder.strides):
        warnings.warn(
            f"image size {image_size} leaves the stride-{max(encoder.strides)} level a 1x1 grid; the "
            f"one-class settings were measured at 64 px (BENCHMARKS.md, section 5)",
            stacklevel=2,
        )
    t0 = time.perf_counter()
    needed = np.flatnonzero(np.isin(data.train_y, classes))
    train_enc = encode_images(encoder, data.train_x[needed], image_size, device, show=show, desc="encoding train")
    test_enc = encode_images(encoder, data.test_x, image_size, device, show=show, desc="encoding test")
    encode_s = time.perf_counter() - t0
    train_y = data.train_y[needed]
    hfr, knn, secs = {}, {}, {}
    for c in classes:
        t = time.perf_counter()
        own = np.flatnonzero(train_y == c)
        tr, va = _split_val(len(own), val_fraction, cfg.seed)
        torch.manual_seed(cfg.seed)
        model = build_model("hfr", **model_opts)
        model.encoder = encoder  # the same frozen weights; no need to hold ten copies
        from reconad.models.hfr.model import FeatureCache

        Trainer(cfg).fit(
            model,
            FeatureCache(_select(train_enc.levels, own[tr])),
            FeatureCache(_select(train_enc.levels, own[va])) if len(va) else None,
        )
        model.eval()
        scores = []
        with torch.inference_mode():
            for i in range(0, len(data.test_y), 256):
                feats = [lv[i : i + 256].to(device) for lv in test_enc.levels]
                scores.append(model.score_features(feats).float().cpu())
        y = (data.test_y != c).astype(int)
        hfr[c] = image_auroc(y, torch.cat(scores).numpy())
        knn[c] = image_auroc(y, knn_scores(train_enc.pooled[own], test_enc.pooled))
        secs[c] = time.perf_counter() - t
        if echo:
            print(
                f"class {c} ({data.class_names[c]}): HFR AUROC {hfr[c]:.4f}  kNN AUROC {knn[c]:.4f}  ({secs[c]:.0f}s)",
                flush=True,
            )
    info = {
        "encode_seconds": encode_s,
        "model_settings": model_opts,
        "train_settings": cfg.to_dict(),
        "knn": {"k": KNN_K, "features": "global average pool of each encoder level, concatenated, L2-normalised"},
    }
    return hfr, knn, secs, info


def _run_detector(
    data: OneClassData,
    model: str,
    classes: list[int],
    image_size: int,
    options: dict[str, Any],
    labelled_ratio: float,
    echo: bool,
    out: Path | None = None,
) -> tuple[dict, dict, dict[str, Any]]:
    from reconad.detector import Detector

    if labelled_ratio > 0 and not _model_uses_labels(model):
        raise ConfigError(f"model {model} does not use labelled anomalies; drop --labelled-ratio")
    seed = int(options.get("seed", 0))
    aurocs, secs = {}, {}
    n_labelled: dict[int, int] = {}
    for c in classes:
        t = time.perf_counter()
        own = np.flatnonzero(data.train_y == c)
        extra = labelled_anomalies(data, c, len(own), labelled_ratio, seed)
        x = data.train_x[np.concatenate([own, extra])]
        y = np.concatenate([np.zeros(len(own), dtype=int), np.ones(len(extra), dtype=int)])
        det = Detector(model, image_size=image_size, **options)
        det.fit(x, y=y if len(extra) else None)
        scores = det.decision_function(data.test_x)
        aurocs[c] = image_auroc((data.test_y != c).astype(int), scores)
        secs[c] = time.perf_counter() - t
        n_labelled[c] = int(len(extra))
        if out is not None:  # long runs: what is done so far survives an interruption
            out.mkdir(parents=True, exist_ok=True)
            (out / "partial.json").write_text(
                json.dumps(
                    {
                        "per_class": {str(k): v for k, v in aurocs.items()},
                        "seconds_per_class": {str(k): v for k, v in secs.items()},
                    },
                    indent=1,
                )
            )
        if echo:
            print(f"class {c} ({data.class_names[c]}): {model} AUROC {aurocs[c]:.4f}  ({secs[c]:.0f}s)", flush=True)
    info = {
        "labelled_ratio": labelled_ratio,
        "labelled_anomalies_per_class": n_labelled,
        "labelled_anomalies": "drawn uniformly at random (seeded) from the training images of all other classes"
        if labelled_ratio > 0
        else None,
    }
    return aurocs, secs, info


def one_class(
    dataset: str,
    root: str | None = None,
    model: str = "hfr",
    classes: list[int] | None = None,
    image_size: int | None = None,
    out: str | Path = "runs/one-class",
    options: dict[str, Any] | None = None,
    labelled_ratio: float = 0.0,
    download: bool = False,
    val_fraction: float = 0.1,
    echo: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Run the one-class protocol; write ``results.json`` and ``results.md`` under ``out``."""
    options = dict(options or {})
    model = model.lower()
    data = load_one_class_set(dataset, root, download=download)
    all_classes = sorted(int(c) for c in np.unique(data.train_y))
    classes = all_classes if not classes else list(classes)
    bad = [c for c in classes if c not in all_classes]
    if bad:
        raise ConfigError(f"unknown class(es) {bad} for {dataset}; classes are {all_classes}")
    if image_size is None:
        if model == "hfr":
            image_size = HFR_ONE_CLASS_IMAGE_SIZE
        else:  # the data's own size, as in the papers
            from reconad.models import model_entry

            image_size = max(int(getattr(model_entry(model)[0], "min_image_size", 32)), int(data.train_x.shape[1]))
    t0 = time.perf_counter()
    if model == "hfr":
        if labelled_ratio > 0:
            raise ConfigError("hfr trains on normal data only; drop --labelled-ratio")
        scores, knn, secs, info = _run_hfr(data, classes, image_size, options, val_fraction, echo)
    else:
        scores, secs, info = _run_detector(data, model, classes, image_size, options, labelled_ratio, echo, Path(out))
        knn = {}
    total = time.perf_counter() - t0
    mean = float(np.mean(list(scores.values())))
    result: dict[str, Any] = {
        "protocol": "one-class",
        "dataset": data.name,
        "data": data.description,
        "root": data.root,
        "model": model,
        "date": date.today().isoformat(),
        "image_size": image_size,
        "per_class": {str(c): float(v) for c, v in scores.items()},
        "mean": mean,
        "seconds_per_class": {str(c): float(v) for c, v in secs.items()},
        "total_seconds": total,
        "settings": options,
        "details": info,
        "published": [{"method": m, "mean_auroc": v} for m, v in PUBLISHED.get(data.name, [])],
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
        },
        "command": command,
    }
    if knn:
        result["knn_per_class"] = {str(c): float(v) for c, v in knn.items()}
        result["knn_mean"] = float(np.mean(list(knn.values())))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "results.md").write_text(results_markdown(result, data.class_names))
    if echo:
        print(results_markdown(result, data.class_names))
    return result


def results_markdown(result: dict[str, Any], class_names: tuple[str, ...]) -> str:
    model = result["model"]
    rows = []
    for c, v in result["per_class"].items():
        row = {"class": c, "name": class_names[int(c)], f"{model} AUROC": v, "seconds": result["seconds_per_class"][c]}
        if "knn_per_class" in result:
            row["kNN AUROC"] = result["knn_per_class"][c]
        rows.append(row)
    mean = {
        "class": "mean",
        "name": "",
        f"{model} AUROC": result["mean"],
        "seconds": float(np.mean(list(result["seconds_per_class"].values()))),
    }
    keys = ["class", "name", f"{model} AUROC"]
    if "knn_per_class" in result:
        mean["kNN AUROC"] = result["knn_mean"]
        keys.append("kNN AUROC")
    keys.append("seconds")
    lines = [
        f"# One-class protocol: {model} on {result['dataset']} ({result['date']})",
        "",
        f"Data: {result['data']}.",
        "",
        "Each class in turn is normal: train on its training images only, test on the whole test "
        "set (that class = normal, all others = anomalous); image AUROC.",
        "",
        format_table(rows + [mean], keys),
        "",
    ]
    d = result.get("details", {})
    if "encode_seconds" in d:
        lines += [
            f"Encoder features of all images computed once: {d['encode_seconds']:.0f} s "
            "(not in the per-class seconds). "
            f"kNN: k={d['knn']['k']}, {d['knn']['features']}.",
            "",
        ]
    lines += [
        f"Total: {result['total_seconds']:.0f} s; image size {result['image_size']}; "
        f"settings {json.dumps(result['settings'], default=str)}.",
        "",
    ]
    if d.get("labelled_ratio"):
        lines += [f"Labelled anomalies: ratio {d['labelled_ratio']} = a/(n+a), {d['labelled_anomalies']}.", ""]
    if result.get("command"):
        lines += ["Command: `" + result["command"] + "`", ""]
    if result["published"]:
        lines += [
            "Published mean AUROC on this dataset (quoted from the papers, **not reproduced here**"
            + ("; full-MNIST figures, shown for orientation only" if result["dataset"] == "mnist-10k" else "")
            + "):",
            "",
        ]
        lines += [f"- {p['method']}: {p['mean_auroc']:.4f}" for p in result["published"]]
        lines.append("")
    return "\n".join(lines)


def parse_classes(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise ConfigError(f"--classes expects comma-separated class numbers, got {text!r}") from None


def run_one_class(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """CLI entry: ``reconad benchmark --protocol one-class``."""
    if not args.dataset:
        raise ConfigError(
            "--dataset is required for the one-class protocol (fashion-mnist, mnist, mnist-10k, cifar10, digits)"
        )
    out = args.out if args.out != "runs/benchmark" else f"runs/one-class-{args.dataset}-{args.model}"
    image_size = args.image_size if getattr(args, "image_size_given", True) else None
    return one_class(
        args.dataset,
        args.root,
        model=args.model,
        classes=parse_classes(args.classes),
        image_size=image_size,
        out=out,
        options=options,
        labelled_ratio=float(getattr(args, "labelled_ratio", 0.0) or 0.0),
        download=bool(getattr(args, "download", False)),
        echo=not args.quiet,
        command="reconad " + " ".join(sys.argv[1:]) if sys.argv[1:] else None,
    )
