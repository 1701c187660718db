"""``one-class``: the papers' protocol on image sets (HFR, MemAE, ESAD, GEOM, ...).

Each class in turn is "normal": a model trains on that class's training images only and
is scored on the whole test set (that class = 0, every other class = 1 anomalous);
the table gives the image AUROC per class and the mean.

HFR's encoder is frozen, so its features of every training and test image are computed
once and shared by the ten per-class models (only the decoders train).  The same
features give the baseline beside it: k-nearest-neighbour distance on the encoder's
globally pooled features (DN2, Bergman et al. 2020), so the table shows what the
reconstruction adds.  Other models train through the Detector on the images.

Public helpers (also used by ``benchmarks/oneclass_ablation.py``): ``encode_images``,
``knn_scores``, ``split_validation``, ``labelled_anomalies``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from reconad.data.class_datasets import OneClassData, load_one_class_set
from reconad.data.inputs import ArrayImageDataset
from reconad.data.records import FeatureBatch
from reconad.engine import TrainConfig, Trainer
from reconad.engine.device import select_device
from reconad.errors import ConfigError
from reconad.jsonfile import write_json
from reconad.metrics import image_auroc
from reconad.models.encoder_features import FeatureCache, encode_dataset
from reconad.models.hfr import HFR
from reconad.protocols.results import Published, Results, markdown_table, write_results
from reconad.protocols.settings import OneClassSettings

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

#: HFR settings for semantic (whole-image) anomalies, measured in BENCHMARKS.md §5, §12.3
#: and §24.5: levels 4/5/6 at 64 px, the nearest-patch term at weight 4 beside the residual,
#: the top 1 % of the fused map.  Through the runner: MNIST-10k 0.9813, Fashion-MNIST 0.9522,
#: within 0.005 of the best of kNN and PatchCore on both; the residual's deepest level plus
#: the pooled term (0.9674, 0.9540) trailed PatchCore by 0.019 on MNIST-10k.
HFR_ONE_CLASS_DEFAULTS: dict[str, Any] = {
    "score": "topk",
    "layers": [4, 5, 6],
    "hybrid": "patch",
    "hybrid_weight": 4.0,
}
HFR_ONE_CLASS_IMAGE_SIZE = 64
#: Engine settings for the per-class decoders (thousands of small feature maps per class).
HFR_ONE_CLASS_TRAIN: dict[str, Any] = {"epochs": 15, "batch_size": 128, "patience": 4}
KNN_K = 2


@dataclass
class EncodedSet:
    """Per-level encoder features of a set of images, and their pooled, L2-normalised vectors."""

    levels: list[torch.Tensor]
    pooled: torch.Tensor

    def features(self, indices: np.ndarray) -> FeatureCache:
        """The per-level features of the images at ``indices``."""
        return FeatureCache(self.levels).select(torch.as_tensor(indices, dtype=torch.long))


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


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices of ``n`` items: ``round(fraction * n)`` held out (none below 10)."""
    perm = np.random.default_rng(seed).permutation(n)
    n_val = int(round(fraction * n)) if n >= 10 else 0
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


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


@dataclass
class SharedFeatures:
    """Encoder features of the training images of the classes run, and of the whole test set."""

    train: EncodedSet
    train_y: np.ndarray
    test: EncodedSet
    test_y: np.ndarray


def _score_features(model: Any, levels: list[torch.Tensor], device: torch.device, chunk: int = 256) -> np.ndarray:
    """Image scores of a model from cached encoder features, in chunks."""
    scores = []
    with torch.inference_mode():
        for i in range(0, int(levels[0].shape[0]), chunk):
            feats = [lv[i : i + chunk].to(device) for lv in levels]
            scores.append(model.predict_step(FeatureBatch(feats)).scores.float().cpu())
    return torch.cat(scores).numpy()


def _reference_patchcore(model_opts: dict[str, Any], encoder: Any, device: torch.device) -> Any:
    """One PatchCore on the HFR's encoder levels, refitted per class (its memory bank only)."""
    from reconad.models.patchcore import PatchCore, PatchCoreConfig

    keep = ("backbone", "layers", "backbone_weights")
    pc = PatchCore(PatchCoreConfig(**{k: v for k, v in model_opts.items() if k in keep}))
    pc.encoder = encoder
    return pc.to(device).eval()


def _patchcore_class(pc: Any, own: np.ndarray, shared: SharedFeatures, device: torch.device) -> np.ndarray:
    """PatchCore's test scores with the class of ``own`` normal, on the same encoder levels."""
    pc.on_fit_end(shared.train.features(own), None, device)
    return _score_features(pc, shared.test.levels, device)


def _hfr_class(
    c: int,
    shared: SharedFeatures,
    model_opts: dict[str, Any],
    cfg: TrainConfig,
    encoder: torch.nn.Module,
    val_fraction: float,
    device: torch.device,
    pc: Any,
) -> tuple[float, float, float]:
    """HFR, kNN and PatchCore AUROC with class ``c`` normal (features shared across classes)."""
    from reconad.models import build_model

    own = np.flatnonzero(shared.train_y == c)
    tr, va = split_validation(len(own), val_fraction, cfg.seed)
    torch.manual_seed(cfg.seed)
    model = build_model("hfr", **model_opts)
    model.encoder = encoder  # the same frozen weights; no need to hold ten copies
    val = shared.train.features(own[va]) if len(va) else None
    Trainer(cfg).fit(model, shared.train.features(own[tr]), val)
    model.eval()
    y = (shared.test_y != c).astype(int)
    hfr = image_auroc(y, _score_features(model, shared.test.levels, device))
    knn = image_auroc(y, knn_scores(shared.train.pooled[own], shared.test.pooled))
    return hfr, knn, image_auroc(y, _patchcore_class(pc, own, shared, device))


def _run_hfr(data: OneClassData, classes: list[int], image_size: int, s: OneClassSettings) -> dict[str, Any]:
    """Per-class HFR decoders on shared encoder features, and the kNN baseline beside them
    (the standard protocol only: ``OneClassSettings`` refuses hfr with ``anomalous_class``)."""
    from reconad.models import build_model

    model_opts, train_opts = _split_options("hfr", {**HFR_ONE_CLASS_DEFAULTS, **HFR_ONE_CLASS_TRAIN, **s.options})
    train_opts.setdefault("progress", False)
    show = bool(s.options.get("progress", s.echo))
    cfg = TrainConfig.from_dict(train_opts)
    device = select_device(cfg.device)
    torch.manual_seed(cfg.seed)
    encoder = cast(HFR, build_model("hfr", **model_opts)).encoder.to(device)
    if image_size < 2 * max(encoder.strides):
        warnings.warn(
            f"image size {image_size} leaves the stride-{max(encoder.strides)} level a 1x1 grid; the "
            f"one-class settings were measured at 64 px (BENCHMARKS.md, section 5)",
            stacklevel=2,
        )
    t0 = time.perf_counter()
    needed = np.flatnonzero(np.isin(data.train_y, classes))
    shared = SharedFeatures(
        train=encode_images(encoder, data.train_x[needed], image_size, device, show=show, desc="encoding train"),
        train_y=data.train_y[needed],
        test=encode_images(encoder, data.test_x, image_size, device, show=show, desc="encoding test"),
        test_y=data.test_y,
    )
    encode_s = time.perf_counter() - t0
    hfr, knn, patchcore, secs = {}, {}, {}, {}
    pc = _reference_patchcore(model_opts, encoder, device)
    for c in classes:
        t = time.perf_counter()
        hfr[c], knn[c], patchcore[c] = _hfr_class(c, shared, model_opts, cfg, encoder, s.val_fraction, device, pc)
        secs[c] = time.perf_counter() - t
        if s.echo:
            print(
                f"class {c} ({data.class_names[c]}): HFR AUROC {hfr[c]:.4f}  kNN {knn[c]:.4f}  "
                f"PatchCore {patchcore[c]:.4f}  ({secs[c]:.0f}s)",
                flush=True,
            )
    details = {
        "encode_seconds": encode_s,
        "model_settings": model_opts,
        "train_settings": cfg.to_dict(),
        "knn": {"k": KNN_K, "features": "global average pool of each encoder level, concatenated, L2-normalised"},
        "patchcore": "the patchcore model (default settings) on the same encoder levels and features",
    }
    return {"scores": hfr, "knn": knn, "patchcore": patchcore, "seconds": secs, "details": details}


def subsample(indices: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """A seeded draw of ``n`` of ``indices`` in their order (all of them when ``n`` is None)."""
    if n is None or n >= len(indices):
        return indices
    keep = np.random.default_rng(seed).choice(len(indices), size=n, replace=False)
    return indices[np.sort(keep)]


def _class_split(
    data: OneClassData, c: int, s: OneClassSettings, seed: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, int]:
    """(training images, their labels or None, test labels 1 = anomalous, labelled count) with
    class ``c`` normal, or with ``anomalous_class`` class ``c`` anomalous and all others normal."""
    if s.anomalous_class:
        return data.train_x[data.train_y != c], None, (data.test_y == c).astype(int), 0
    own = subsample(np.flatnonzero(data.train_y == c), s.train_per_class, seed + c)
    extra = labelled_anomalies(data, c, len(own), s.labelled_ratio, seed)
    y = np.concatenate([np.zeros(len(own), dtype=int), np.ones(len(extra), dtype=int)])
    x = data.train_x[np.concatenate([own, extra])]
    return x, (y if len(extra) else None), (data.test_y != c).astype(int), len(extra)


def _run_detector(data: OneClassData, classes: list[int], image_size: int, s: OneClassSettings) -> dict[str, Any]:
    """One Detector per class on the images (any registered model)."""
    from reconad.detector import Detector

    model = s.model_name
    seed = int(s.options.get("seed", 0))
    aurocs, secs, n_labelled = {}, {}, {}
    out = Path(s.out)
    for c in classes:
        t = time.perf_counter()
        x, y, y_test, n_labelled[c] = _class_split(data, c, s, seed)
        det = Detector(model, image_size=image_size, **s.options)
        det.fit(x, y=y)
        aurocs[c] = image_auroc(y_test, det.decision_function(data.test_x))
        secs[c] = time.perf_counter() - t
        out.mkdir(parents=True, exist_ok=True)  # long runs: what is done so far survives an interruption
        partial = {
            "seed": seed,
            "per_class": {str(k): v for k, v in aurocs.items()},
            "seconds_per_class": {str(k): v for k, v in secs.items()},
        }
        write_json(out / ("partial.json" if s.seeds == 1 else f"partial-seed{seed}.json"), partial, indent=1)
        if s.echo:
            print(f"class {c} ({data.class_names[c]}): {model} AUROC {aurocs[c]:.4f}  ({secs[c]:.0f}s)", flush=True)
    how = "drawn uniformly at random (seeded) from the training images of all other classes"
    details = {
        "labelled_ratio": s.labelled_ratio,
        "labelled_anomalies_per_class": n_labelled,
        "labelled_anomalies": how if s.labelled_ratio > 0 else None,
        "train_per_class": s.train_per_class,
    }
    return {"scores": aurocs, "knn": {}, "patchcore": {}, "seconds": secs, "details": details}


def _image_size(s: OneClassSettings, model: str, data: OneClassData) -> int:
    if s.image_size is not None:
        return int(s.image_size)
    if model == "hfr":
        return HFR_ONE_CLASS_IMAGE_SIZE
    from reconad.models import model_entry

    # the data's own size, as in the papers
    return max(int(model_entry(model)[0].min_image_size), int(data.train_x.shape[1]))


def _over_seeds(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """One runner result from several seeds' results: per-class means (AUROCs and seconds),
    with every seed's AUROCs and the spread kept in ``details``."""
    if len(runs) == 1:
        return runs[0]
    classes = list(runs[0]["scores"])
    per_seed = {str(sd): {str(c): float(r["scores"][c]) for c in classes} for sd, r in zip(seeds, runs, strict=True)}
    class_means = [float(np.mean(list(r["scores"].values()))) for r in runs]
    details = {
        **runs[0]["details"],
        "seeds": seeds,
        "per_seed": per_seed,
        "per_class_std": {str(c): float(np.std([r["scores"][c] for r in runs])) for c in classes},
        "mean_per_seed": dict(zip(map(str, seeds), class_means, strict=True)),
        "mean_std": float(np.std(class_means)),
    }
    means = {key: _mean_over(runs, key, classes) for key in ("scores", "knn", "patchcore", "seconds")}
    return {**means, "details": details}


def _mean_over(runs: list[dict[str, Any]], key: str, classes: list[int]) -> dict[int, float]:
    """Per-class mean of ``key`` over the runs (empty where the runner has no such values)."""
    if not runs[0][key]:
        return {}
    return {c: float(np.mean([r[key][c] for r in runs])) for c in classes}


def run(settings: OneClassSettings) -> dict[str, Any]:
    """Run the one-class protocol; write ``results.json`` and ``results.md`` under ``out``."""
    s = settings  # checked when it was made (OneClassSettings.check)
    model = s.model_name
    data = load_one_class_set(s.dataset, s.root, download=s.download)
    all_classes = sorted(int(c) for c in np.unique(data.train_y))
    classes = list(s.classes) if s.classes else all_classes
    bad = [c for c in classes if c not in all_classes]
    if bad:
        raise ConfigError(f"unknown class(es) {bad} for {s.dataset}; classes are {all_classes}")
    image_size = _image_size(s, model, data)
    t0 = time.perf_counter()
    runner = _run_hfr if model == "hfr" else _run_detector
    base = int(s.options.get("seed", 0))
    seeds = [base + i for i in range(s.seeds)]
    runs = [runner(data, classes, image_size, replace(s, options={**s.options, "seed": sd})) for sd in seeds]
    r = _over_seeds(runs, seeds)
    payload: dict[str, Any] = {
        "dataset": data.name,
        "root": data.root,
        "model": model,
        "image_size": image_size,
        "per_class": {str(c): float(v) for c, v in r["scores"].items()},
        "mean": float(np.mean(list(r["scores"].values()))),
        "seconds_per_class": {str(c): float(v) for c, v in r["seconds"].items()},
        "total_seconds": time.perf_counter() - t0,
        "details": r["details"],
        "anomalous_class": s.anomalous_class,
    }
    for key in ("knn", "patchcore"):
        if r[key]:
            payload[f"{key}_per_class"] = {str(c): float(v) for c, v in r[key].items()}
            payload[f"{key}_mean"] = float(np.mean(list(r[key].values())))
    published = [
        Published(method=m.split(",")[0], source=m.split(",", 1)[1].strip(), value=v, metric="mean AUROC")
        for m, v in PUBLISHED.get(data.name, [])
        if not s.anomalous_class  # those papers ran the standard protocol
    ]
    note = "Full-MNIST figures, shown for orientation only." if data.name == "mnist-10k" else ""
    body = results_markdown(payload, data.class_names)
    doc = write_results(
        s.out,
        Results(
            "one-class",
            f"One-class protocol{' (inverse: one class anomalous)' if s.anomalous_class else ''}: {model} on {data.name}",
            data.description,
            s.command,
            dict(s.options),
            payload,
            body,
            published,
            note,
        ),
    )
    if s.echo:
        print((Path(s.out) / "results.md").read_text())
    return doc


def results_markdown(result: dict[str, Any], class_names: tuple[str, ...]) -> str:
    """The per-class table (with the kNN baseline where there is one) and the protocol's notes."""
    model = result["model"]
    refs = [
        (k, label)
        for k, label in (("knn", "kNN AUROC"), ("patchcore", "PatchCore AUROC"))
        if f"{k}_per_class" in result
    ]
    d = result.get("details", {})
    spread = d.get("per_class_std")
    rows = []
    for c, v in result["per_class"].items():
        row = {"class": c, "name": class_names[int(c)], f"{model} AUROC": v, "seconds": result["seconds_per_class"][c]}
        if spread:
            row["std over seeds"] = spread[c]
        for k, label in refs:
            row[label] = result[f"{k}_per_class"][c]
        rows.append(row)
    mean = {
        "class": "mean",
        "name": "",
        f"{model} AUROC": result["mean"],
        "seconds": float(np.mean(list(result["seconds_per_class"].values()))),
    }
    keys = ["class", "name", f"{model} AUROC"]
    if spread:
        mean["std over seeds"] = d["mean_std"]
        keys.append("std over seeds")
    for k, label in refs:
        mean[label] = result[f"{k}_mean"]
        keys.append(label)
    keys.append("seconds")
    standard = (
        "Each class in turn is normal: train on its training images only, test on the whole test "
        "set (that class = normal, all others = anomalous); image AUROC."
    )
    inverse = (
        "Inverse protocol (--anomalous-class): each class in turn is anomalous: train on the training "
        "images of all other classes, test on the whole test set (that class = anomalous, all others = "
        "normal); image AUROC. Not comparable with the standard protocol's figures."
    )
    lines = [inverse if result.get("anomalous_class") else standard, "", markdown_table([*rows, mean], keys), ""]
    return "\n".join(lines + _notes(result))


def _notes(result: dict[str, Any]) -> list[str]:
    """The lines under the per-class table: seeds, shared features, totals, training-set notes."""
    d = result.get("details", {})
    lines = []
    if d.get("per_class_std"):
        lines += [
            f"Seeds {', '.join(map(str, d['seeds']))}: each AUROC is the mean over the seeds, and its spread "
            "the standard deviation (ddof=0) over them; the mean row's spread is that of the per-seed means "
            "over the classes. Each seed's figures are in results.json (details.per_seed).",
            "",
        ]
    if "encode_seconds" in d:
        lines += [
            f"Encoder features of all images computed once: {d['encode_seconds']:.0f} s "
            f"(not in the per-class seconds). kNN: k={d['knn']['k']}, {d['knn']['features']}.",
            "",
        ]
    lines += [f"Total: {result['total_seconds']:.0f} s; image size {result['image_size']}.", ""]
    if d.get("train_per_class"):
        lines += [f"Training set: a seeded draw of {d['train_per_class']} normal images per class.", ""]
    if d.get("labelled_ratio"):
        lines += [f"Labelled anomalies: ratio {d['labelled_ratio']} = a/(n+a), {d['labelled_anomalies']}.", ""]
    return lines


def parse_classes(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(c) for c in text.split(",") if c.strip()]
    except ValueError:
        raise ConfigError(f"--classes expects comma-separated class numbers, got {text!r}") from None
