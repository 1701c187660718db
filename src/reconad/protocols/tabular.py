"""Tabular benchmark protocols: ADBench sets side by side with PyOD, and KDDCUP99.

``tabular`` (``reconad benchmark --protocol tabular``), for each dataset and seed:

* a stratified 70/30 train/test split (scikit-learn ``train_test_split``, the seed as
  ``random_state``), as in ADBench;
* unsupervised models (ours and PyOD's) train on the *normal* rows of the train part
  only (the clean one-class setting); the train part's anomalies are left out;
* semi-supervised models (``esad``) additionally get ``label_fraction`` of the train
  part's anomalies (at least one when the fraction is > 0), labelled ``y = 1``;
* features are standardised with the mean and std of the normal train rows (a constant
  column keeps std 1); every model sees the same scaled arrays;
* the 30% test part (normal rows and anomalies) is scored: AUROC and AUPR
  (``reconad.metrics``), mean ± std (``ddof=0``) over the seeds, plus fit + score seconds.

``kddcup99``: the "10 percent" file with the DAGMM/MemAE protocol (see
:func:`reconad.data.tabular.load_kddcup99`: ``normal.`` traffic is the anomaly class),
a 50/50 random split per seed, training on the non-anomalous (attack) rows of the
train half; the top 20% of the *test* scores are flagged anomalous, giving precision,
recall and F1 (AUROC/AUPR reported too).  Our models train with batch size 1024 there
(DAGMM's; about 200k training rows) unless ``--set batch_size=...`` says otherwise.

Models: ours through :class:`reconad.Detector` (skipped with a message when a name is
not registered in ``reconad.models.MODELS``), PyOD's ``AutoEncoder`` (``pyod-ae``) and
``IForest`` (``iforest``) when PyOD is installed (``pip install 'reconad[bench]'``).
Options: ``--set key=value`` goes to every one of our models; ``--set memae.key=value``
only to the model named before the dot (PyOD models included, e.g.
``--set pyod-ae.epoch_num=20``).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reconad.data.tabular import ADBENCH_DEFAULT, TabularData, find_kddcup99_file, load_adbench, load_kddcup99
from reconad.errors import ConfigError, DataError
from reconad.metrics import image_aupr, image_auroc

log = logging.getLogger("reconad")

OUR_MODELS = ("ae", "vae", "memae", "esad")
PYOD_MODELS = ("pyod-ae", "iforest")
DEFAULT_MODELS = OUR_MODELS + PYOD_MODELS
#: models that take labelled anomalies (``fit(X, y)``)
SEMI_SUPERVISED = frozenset({"esad"})
DEFAULT_SEEDS = 5
DEFAULT_LABEL_FRACTION = 0.1
TEST_FRACTION = 0.3
KDD_FLAG_FRACTION = 0.2
KDD_BATCH_SIZE = 1024
#: intra-op threads while a tabular protocol runs (``--set threads=N``); see torch_threads
DEFAULT_THREADS = 1

#: Published figures, shown beside ours and never produced here.
PUBLISHED_TABULAR = {
    "source": "ESAD (Huang et al., arXiv 2012.04905), semi-supervised, AUROC",
    "model": "esad",
    "auroc": {"satellite": 0.925, "satimage-2": 0.999, "shuttle": 0.991, "cardio": 0.988},
}
PUBLISHED_KDD = {
    "rows": [{"model": "DAGMM", "source": "Zong et al., ICLR 2018", "f1": 0.9369}],
    "note": "MemAE's own KDDCUP99 figure (Gong et al., ICCV 2019) could not be confirmed with the sources "
    "at hand, so it is not listed.",
}


class Scorer(Protocol):
    """What the runner needs from a model: fit on rows (``y`` 1 = labelled anomaly), score rows."""

    def fit(self, X: np.ndarray, y: np.ndarray | None) -> None: ...

    def score(self, X: np.ndarray) -> np.ndarray: ...


# ---------------------------------------------------------------------- model makers


class DetectorScorer:
    """One of our registered models through the Detector facade."""

    def __init__(self, name: str, seed: int, options: dict[str, Any]) -> None:
        from reconad.detector import Detector

        self.name = name
        self.det = Detector(name, **{**options, "seed": seed})

    def fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.det.fit(X.astype(np.float32), y if self.name in SEMI_SUPERVISED else None)

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.det.decision_function(X.astype(np.float32)), dtype=np.float64)


class PyODScorer:
    """PyOD's AutoEncoder or IForest with their defaults (plus any ``--set pyod-ae.key=...``)."""

    def __init__(self, name: str, seed: int, options: dict[str, Any]) -> None:
        if name == "iforest":
            from pyod.models.iforest import IForest

            self.model = IForest(**{"random_state": seed, **options})
        else:
            from pyod.models.auto_encoder import AutoEncoder

            self.model = AutoEncoder(**{"random_state": seed, "verbose": 0, **options})

    def fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.model.fit(X)

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.decision_function(X), dtype=np.float64)


Maker = Callable[[str, int, dict[str, Any]], Scorer]
#: Extra models by name (tests register small fakes here).
EXTRA_MODELS: dict[str, Maker] = {}


def pyod_available() -> bool:
    try:
        import pyod  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_models(requested: str | None) -> tuple[dict[str, Maker], dict[str, str]]:
    """(name -> maker for the runnable models, name -> why skipped)."""
    from reconad.models import MODELS, model_entry

    names = [m.strip().lower() for m in requested.split(",") if m.strip()] if requested else list(DEFAULT_MODELS)
    known = set(DEFAULT_MODELS) | set(EXTRA_MODELS)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(
            f"unknown model(s) {', '.join(map(repr, unknown))} for the tabular protocols; "
            f"choose from {', '.join(sorted(known))}"
        )
    run: dict[str, Maker] = {}
    skipped: dict[str, str] = {}
    have_pyod = pyod_available()
    for n in dict.fromkeys(names):
        if n in EXTRA_MODELS:
            run[n] = EXTRA_MODELS[n]
        elif n in PYOD_MODELS:
            if have_pyod:
                run[n] = PyODScorer
            else:
                skipped[n] = "PyOD is not installed (pip install 'reconad[bench]')"
        elif n in MODELS:
            try:
                model_entry(n)
            except Exception as exc:  # registered but not importable in this build
                skipped[n] = f"model {n!r} cannot be imported ({type(exc).__name__}: {exc})"
                continue
            run[n] = DetectorScorer
        else:
            skipped[n] = f"model {n!r} is not registered in this build (reconad.models.MODELS)"
    for n, why in skipped.items():
        print(f"skipping {n}: {why}", file=sys.stderr, flush=True)
    if not run:
        raise ConfigError("no model to run: " + "; ".join(f"{n}: {w}" for n, w in skipped.items()))
    return run, skipped


def split_options(options: dict[str, Any], models: list[str]) -> dict[str, dict[str, Any]]:
    """Per-model options: ``key`` for all our models, ``model.key`` for that model only."""
    common = {k: v for k, v in options.items() if "." not in k}
    per: dict[str, dict[str, Any]] = {m: {} for m in models}
    for k, v in options.items():
        if "." in k:
            prefix, key = k.split(".", 1)
            target = prefix.replace("_", "-").lower()
            if target not in per:
                raise ConfigError(f"--set {k}: {target!r} is not one of the models run ({', '.join(models)})")
            per[target][key] = v
    out = {}
    for m in models:
        base = {} if m in PYOD_MODELS else dict(common)
        out[m] = {**base, **per[m]}
    return out


def _checked_options(makers: dict[str, Maker], options: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per-model options, each model built once so a bad option fails before any training."""
    per = split_options(dict(options or {}), list(makers))
    for name, maker in makers.items():
        try:
            maker(name, 0, per[name])
        except TypeError as exc:  # PyOD: unexpected keyword
            raise ConfigError(f"{name}: {exc}") from exc
    return per


# ------------------------------------------------------------------------ splits


@dataclass
class Split:
    """Scaled arrays for one dataset and seed."""

    train_normal: np.ndarray
    labelled: np.ndarray  # labelled anomalies (semi-supervised models only)
    test: np.ndarray
    y_test: np.ndarray

    def training(self, semi_supervised: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if not semi_supervised or len(self.labelled) == 0:
            return self.train_normal, None
        X = np.concatenate([self.train_normal, self.labelled])
        y = np.concatenate([np.zeros(len(self.train_normal), np.int64), np.ones(len(self.labelled), np.int64)])
        return X, y

    def sizes(self) -> dict[str, int]:
        return {
            "train_normal": len(self.train_normal),
            "labelled_anomalies": len(self.labelled),
            "test": len(self.test),
            "test_anomalies": int(self.y_test.sum()),
        }


def _standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    mu = train.mean(axis=0)
    sd = train.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(a - mu) / sd for a in (train, *others)]


def _labelled_count(n_anomalies: int, fraction: float) -> int:
    if fraction <= 0 or n_anomalies == 0:
        return 0
    return min(n_anomalies, max(1, int(round(fraction * n_anomalies))))


def tabular_split(
    data: TabularData, seed: int, label_fraction: float = DEFAULT_LABEL_FRACTION, test_fraction: float = TEST_FRACTION
) -> Split:
    """Stratified split; normal train rows + labelled share of train anomalies; standardised."""
    from sklearn.model_selection import train_test_split

    if data.n_anomalies < 2 or data.n_anomalies > len(data) - 2:
        raise DataError(f"{data.name}: needs at least two normal rows and two anomalies")
    idx = np.arange(len(data))
    tr, te = train_test_split(idx, test_size=test_fraction, stratify=data.y, random_state=seed)
    rng = np.random.default_rng(seed)
    tr_anom = tr[data.y[tr] == 1]
    lab = rng.permutation(tr_anom)[: _labelled_count(len(tr_anom), label_fraction)]
    normal = tr[data.y[tr] == 0]
    train_n, labelled, test = _standardise(data.X[normal], data.X[lab], data.X[te])
    return Split(train_n, labelled, test, data.y[te].astype(np.int64))


def kdd_split(data: TabularData, seed: int, label_fraction: float = DEFAULT_LABEL_FRACTION) -> Split:
    """DAGMM/MemAE: random 50/50 split, train on the train half's non-anomalous rows.

    The features are already min-max scaled over the whole file (the protocol's own
    preprocessing), so no further scaling happens here.
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(data))
    half = len(data) // 2
    tr, te = perm[:half], perm[half:]
    tr_anom = tr[data.y[tr] == 1]
    lab = rng.permutation(tr_anom)[: _labelled_count(len(tr_anom), label_fraction)]
    f32 = np.float32  # the file is 494k x 118: halve the copies' memory
    return Split(
        data.X[tr[data.y[tr] == 0]].astype(f32),
        data.X[lab].astype(f32),
        data.X[te].astype(f32),
        data.y[te].astype(np.int64),
    )


def top_fraction_prf(labels: np.ndarray, scores: np.ndarray, fraction: float = KDD_FLAG_FRACTION) -> dict[str, float]:
    """Flag the ``fraction`` highest scores as anomalous; precision, recall, F1 (anomaly = positive)."""
    labels = np.asarray(labels).astype(np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    k = int(round(fraction * len(scores)))
    flags = np.zeros(len(scores), dtype=bool)
    flags[np.argsort(-scores, kind="stable")[:k]] = True
    tp = float(np.sum(flags & (labels == 1)))
    precision = tp / k if k else float("nan")
    positives = float(labels.sum())
    recall = tp / positives if positives else float("nan")
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


# ------------------------------------------------------------------------- runner


def _run_one(name: str, maker: Maker, split: Split, seed: int, options: dict[str, Any]) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    model = maker(name, seed, options)
    X, y = split.training(name in SEMI_SUPERVISED)
    model.fit(X, y)
    scores = model.score(split.test)
    if scores.shape != (len(split.test),):
        raise DataError(f"{name} returned {scores.shape} scores for {len(split.test)} rows")
    return scores, time.perf_counter() - t0


def _warm_up() -> None:
    """The first torch optimizer in a process imports torch._dynamo (seconds on a busy
    machine); pay that here so it does not count as the first model's training time."""
    import torch

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray([v for v in values if v == v], dtype=np.float64)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(a.mean()), float(a.std())


def _cell(mean: float, std: float) -> str:
    return "—" if mean != mean else f"{mean:.3f} ± {std:.3f}"


def _summary(
    runs: list[dict[str, Any]], datasets: list[str], models: list[str], metrics: list[str]
) -> list[dict[str, Any]]:
    out = []
    for d in datasets:
        for m in models:
            rs = [r for r in runs if r["dataset"] == d and r["model"] == m]
            if not rs:
                continue
            row: dict[str, Any] = {
                "dataset": d,
                "model": m,
                "seeds": len(rs),
                "failed": sum(1 for r in rs if "error" in r),
            }
            for k in metrics + ["seconds"]:
                row[f"{k}_mean"], row[f"{k}_std"] = _mean_std([r.get(k, float("nan")) for r in rs])
            out.append(row)
    return out


def _metric_table(summary: list[dict[str, Any]], datasets: list[str], models: list[str], metric: str) -> str:
    lines = ["| dataset | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for d in datasets:
        cells = []
        for m in models:
            row = next((s for s in summary if s["dataset"] == d and s["model"] == m), None)
            if row is None:
                cells.append("—")
            elif metric == "seconds":
                cells.append(f"{row['seconds_mean']:.1f}")
            else:
                cells.append(_cell(row[f"{metric}_mean"], row[f"{metric}_std"]))
        lines.append(f"| {d} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    import torch

    return {
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }


def _parse_datasets(text: str | None) -> list[str]:
    if not text:
        return list(ADBENCH_DEFAULT)
    names = [d.strip() for d in text.split(",") if d.strip()]
    if not names:
        raise ConfigError("--datasets is empty")
    return names


def tabular(
    data_root: str | Path,
    out: str | Path,
    datasets: list[str] | None = None,
    seeds: list[int] | None = None,
    models: str | None = None,
    label_fraction: float = DEFAULT_LABEL_FRACTION,
    options: dict[str, Any] | None = None,
    echo: bool = True,
) -> dict[str, Any]:
    """ADBench sets: every model on the same stratified splits; writes results.md/json in ``out``."""
    if not 0 <= label_fraction <= 1:
        raise ConfigError(f"--label-fraction must be in [0, 1], got {label_fraction}")
    datasets = list(datasets or ADBENCH_DEFAULT)
    seeds = list(seeds if seeds is not None else range(DEFAULT_SEEDS))
    loaded: dict[str, TabularData] = {}
    for name in datasets:  # all read first: a bad name fails before any training
        d = load_adbench(name, data_root)
        loaded.setdefault(d.name, d)
    datasets = list(loaded)
    makers, skipped = resolve_models(models)
    names = list(makers)
    per_opts = _checked_options(makers, options)
    _warm_up()
    out = Path(out)
    runs: list[dict[str, Any]] = []
    info: dict[str, Any] = {}
    for data in loaded.values():
        for seed in seeds:
            split = tabular_split(data, seed, label_fraction)
            info[data.name] = {
                "rows": len(data),
                "features": data.X.shape[1],
                "anomalies": data.n_anomalies,
                **split.sizes(),
            }
            for m in names:
                run = _attempt(
                    {"dataset": data.name, "model": m, "seed": seed},
                    lambda: _run_one(m, makers[m], split, seed, per_opts[m]),
                    split.y_test,
                )
                runs.append(run)
                if echo and "error" not in run:
                    print(
                        f"{data.name} seed {seed} {m}: AUROC {run['auroc']:.4f} AUPR {run['aupr']:.4f} "
                        f"({run['seconds']:.1f}s)",
                        flush=True,
                    )
        result = _write_tabular(out, datasets, names, seeds, runs, info, skipped, label_fraction, options)
    if echo:
        print((out / "results.md").read_text())
    return result


def _attempt(
    run: dict[str, Any],
    fit_and_score: Callable[[], tuple[np.ndarray, float]],
    y_test: np.ndarray,
    with_prf: bool = False,
) -> dict[str, Any]:
    """Fill ``run`` with the metrics of one model on one split, or with its error.

    One failing model must not lose a long benchmark: the error is recorded (and
    printed) and the benchmark goes on.
    """
    try:
        scores, secs = fit_and_score()
        if with_prf:
            run.update(top_fraction_prf(y_test, scores))
        run.update(auroc=image_auroc(y_test, scores), aupr=image_aupr(y_test, scores), seconds=secs)
    except Exception as exc:
        run["error"] = f"{type(exc).__name__}: {exc}"
        print(f"{run['dataset']} seed {run['seed']} {run['model']}: FAILED {run['error']}", file=sys.stderr, flush=True)
    return run


def _write_tabular(
    out: Path,
    datasets: list[str],
    models: list[str],
    seeds: list[int],
    runs: list[dict[str, Any]],
    info: dict[str, Any],
    skipped: dict[str, str],
    label_fraction: float,
    options: dict[str, Any] | None,
) -> dict[str, Any]:
    done = [d for d in datasets if any(r["dataset"] == d for r in runs)]
    summary = _summary(runs, done, models, ["auroc", "aupr"])
    today = date.today().isoformat()
    protocol = (
        f"stratified {int((1 - TEST_FRACTION) * 100)}/{int(TEST_FRACTION * 100)} train/test split per seed; "
        "unsupervised models train on the normal rows of the train part; semi-supervised models "
        f"({', '.join(sorted(SEMI_SUPERVISED))}) also get {label_fraction:g} of the train part's anomalies, "
        "labelled; features standardised with the normal train rows' mean/std; scores on the test part"
    )
    result = {
        "protocol": "tabular",
        "date": today,
        "description": protocol,
        "datasets": info,
        "models": models,
        "seeds": seeds,
        "label_fraction": label_fraction,
        "test_fraction": TEST_FRACTION,
        "settings": dict(options or {}),
        "skipped": skipped,
        "runs": runs,
        "summary": summary,
        "published": PUBLISHED_TABULAR,
        "machine": _machine(),
    }
    lines = [
        f"# Tabular benchmark ({today})",
        "",
        f"Protocol: {protocol}.",
        "",
        f"Seeds: {', '.join(map(str, seeds))}; mean ± std (ddof=0) over seeds.",
        "",
    ]
    if skipped:
        lines += ["Skipped: " + "; ".join(f"{m} ({why})" for m, why in skipped.items()), ""]
    for title, metric in (("AUROC", "auroc"), ("AUPR", "aupr"), ("Seconds (fit + score, mean per seed)", "seconds")):
        lines += [f"## {title}", "", _metric_table(summary, done, models, metric), ""]
    lines += [
        "## Data",
        "",
        "| dataset | rows | features | anomalies | train normal | labelled anomalies | test |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in done:
        i = info[d]
        lines.append(
            f"| {d} | {i['rows']} | {i['features']} | {i['anomalies']} | {i['train_normal']} | "
            f"{i['labelled_anomalies']} | {i['test']} ({i['test_anomalies']} anomalies) |"
        )
    pub = PUBLISHED_TABULAR
    lines += [
        "",
        f"## Published (not reproduced here): {pub['source']}",
        "",
        "| dataset | published ESAD AUROC | our esad AUROC |",
        "|---|---|---|",
    ]
    for d, v in pub["auroc"].items():
        row = next((s for s in summary if s["dataset"].lower() == d and s["model"] == "esad"), None)
        ours = _cell(row["auroc_mean"], row["auroc_std"]) if row else "not run"
        lines.append(f"| {d} | {v:.3f} | {ours} |")
    lines += ["", "Published figures come from the paper's own protocol and are shown for orientation only.", ""]
    failed = [r for r in runs if "error" in r]
    if failed:
        lines += (
            ["## Failures", ""]
            + [f"- {r['dataset']} seed {r['seed']} {r['model']}: {r['error']}" for r in failed]
            + [""]
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "results.md").write_text("\n".join(lines))
    return result


def kddcup99(
    path: str | Path,
    out: str | Path,
    seeds: list[int] | None = None,
    models: str | None = None,
    label_fraction: float = DEFAULT_LABEL_FRACTION,
    options: dict[str, Any] | None = None,
    echo: bool = True,
    data: TabularData | None = None,
) -> dict[str, Any]:
    """KDDCUP99 10% file, DAGMM/MemAE protocol; precision/recall/F1 at the top 20% of test scores."""
    if not 0 <= label_fraction <= 1:
        raise ConfigError(f"--label-fraction must be in [0, 1], got {label_fraction}")
    seeds = list(seeds if seeds is not None else range(DEFAULT_SEEDS))
    makers, skipped = resolve_models(models or "ae,vae,memae,esad,iforest")
    # ~200k training rows: DAGMM's batch size unless one is given (16 would take hours on a CPU)
    options = {"batch_size": KDD_BATCH_SIZE, **(options or {})}
    names = list(makers)
    per_opts = _checked_options(makers, options)
    if data is None:
        file = find_kddcup99_file(path)
        t0 = time.perf_counter()
        data = load_kddcup99(file)
        if echo:
            print(
                f"read {file}: {len(data)} rows, {data.X.shape[1]} features, {data.n_anomalies} 'normal.' rows "
                f"(the anomaly class) in {time.perf_counter() - t0:.0f}s",
                flush=True,
            )
    _warm_up()
    out = Path(out)
    runs: list[dict[str, Any]] = []
    sizes: dict[str, int] = {}
    for seed in seeds:
        split = kdd_split(data, seed, label_fraction)
        sizes = split.sizes()
        for m in names:
            run = _attempt(
                {"dataset": "kddcup99", "model": m, "seed": seed},
                lambda: _run_one(m, makers[m], split, seed, per_opts[m]),
                split.y_test,
                with_prf=True,
            )
            runs.append(run)
            if echo and "error" not in run:
                print(
                    f"kddcup99 seed {seed} {m}: P {run['precision']:.4f} R {run['recall']:.4f} F1 {run['f1']:.4f} "
                    f"AUROC {run['auroc']:.4f} ({run['seconds']:.1f}s)",
                    flush=True,
                )
        result = _write_kdd(out, names, seeds, runs, sizes, skipped, label_fraction, options, data)
    if echo:
        print((out / "results.md").read_text())
    return result


def _write_kdd(
    out: Path,
    models: list[str],
    seeds: list[int],
    runs: list[dict[str, Any]],
    sizes: dict[str, int],
    skipped: dict[str, str],
    label_fraction: float,
    options: dict[str, Any] | None,
    data: TabularData,
) -> dict[str, Any]:
    metrics = ["precision", "recall", "f1", "auroc", "aupr"]
    summary = _summary(runs, ["kddcup99"], models, metrics)
    today = date.today().isoformat()
    protocol = (
        "KDDCUP99 10% file; one-hot protocol_type/service/flag, min-max scaling over the file; "
        "'normal.' traffic is the anomaly class; random 50/50 split per seed; models train on the "
        "non-anomalous (attack) rows of the train half"
        + (
            f" (semi-supervised models also get {label_fraction:g} of the train half's anomalies, labelled)"
            if any(m in SEMI_SUPERVISED for m in models)
            else ""
        )
        + f"; the top {KDD_FLAG_FRACTION:.0%} of test scores are flagged anomalous; our models train "
        f"with batch size {(options or {}).get('batch_size', KDD_BATCH_SIZE)}"
    )
    result = {
        "protocol": "kddcup99",
        "date": today,
        "description": protocol,
        "rows": len(data),
        "features": int(data.X.shape[1]),
        "anomalies": data.n_anomalies,
        "split": sizes,
        "models": models,
        "seeds": seeds,
        "label_fraction": label_fraction,
        "flag_fraction": KDD_FLAG_FRACTION,
        "settings": dict(options or {}),
        "skipped": skipped,
        "runs": runs,
        "summary": summary,
        "published": PUBLISHED_KDD,
        "machine": _machine(),
    }
    lines = [
        f"# KDDCUP99 benchmark ({today})",
        "",
        f"Protocol: {protocol}.",
        "",
        f"Data: {len(data)} rows, {data.X.shape[1]} features, {data.n_anomalies} anomalies; per seed "
        f"{sizes.get('train_normal', 0)} training rows, {sizes.get('test', 0)} test rows.",
        "",
        f"Seeds: {', '.join(map(str, seeds))}; mean ± std (ddof=0) over seeds.",
        "",
    ]
    if skipped:
        lines += ["Skipped: " + "; ".join(f"{m} ({why})" for m, why in skipped.items()), ""]
    lines += ["| model | precision | recall | F1 | AUROC | AUPR | seconds |", "|---|---|---|---|---|---|---|"]
    for s in summary:
        lines.append(
            f"| {s['model']} | "
            + " | ".join(_cell(s[f"{k}_mean"], s[f"{k}_std"]) for k in metrics)
            + f" | {s['seconds_mean']:.1f} |"
        )
    lines += [
        "",
        "## Published (not reproduced here)",
        "",
        "| model | source | precision | recall | F1 |",
        "|---|---|---|---|---|",
    ]
    for r in PUBLISHED_KDD["rows"]:
        cells = [f"{r[k]:.4f}" if k in r else "—" for k in ("precision", "recall", "f1")]
        lines.append(f"| {r['model']} | {r['source']} | " + " | ".join(cells) + " |")
    lines += ["", PUBLISHED_KDD["note"], ""]
    failed = [r for r in runs if "error" in r]
    if failed:
        lines += ["## Failures", ""] + [f"- seed {r['seed']} {r['model']}: {r['error']}" for r in failed] + [""]
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    (out / "results.md").write_text("\n".join(lines))
    return result


def run_tabular(args: argparse.Namespace, options: dict[str, Any]) -> dict[str, Any]:
    """Entry point of ``reconad benchmark --protocol tabular|kddcup99``."""
    root = getattr(args, "data_root", None) or args.root
    if root is None:
        where = "adbench-classical" if args.protocol == "tabular" else "kddcup99"
        raise ConfigError(f"give --data-root (e.g. ../shared/data/{where})")
    n_seeds = getattr(args, "seeds", None)
    n_seeds = DEFAULT_SEEDS if n_seeds is None else int(n_seeds)
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be >= 1, got {n_seeds}")
    seeds = [int(args.seed) + i for i in range(n_seeds)]
    label_fraction = getattr(args, "label_fraction", None)
    label_fraction = DEFAULT_LABEL_FRACTION if label_fraction is None else float(label_fraction)
    options = {k: v for k, v in options.items() if k != "seed"}
    options["progress"] = False  # one bar per fit would bury the per-run lines
    threads = options.pop("threads", DEFAULT_THREADS)
    if not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"--set threads=N needs a whole number >= 1, got {threads!r}")
    models = getattr(args, "models", None)
    with torch_threads(threads):
        if args.protocol == "kddcup99":
            return kddcup99(
                root,
                args.out,
                seeds=seeds,
                models=models,
                label_fraction=label_fraction,
                options=options,
                echo=not args.quiet,
            )
        return tabular(
            root,
            args.out,
            datasets=_parse_datasets(getattr(args, "datasets", None)),
            seeds=seeds,
            models=models,
            label_fraction=label_fraction,
            options=options,
            echo=not args.quiet,
        )


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, then restore.

    The tabular models are small MLPs: one thread is as fast as several on an idle
    machine, and on a busy one two threads were measured 70x slower per step
    (3.6 ms vs 260 ms for a 1024 x 118 batch) from threads waiting on each other.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
