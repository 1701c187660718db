"""Tabular benchmark protocols: ADBench sets side by side with PyOD, and KDDCUP99.

``tabular`` (``reconad benchmark tabular``), for each dataset and seed:

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
:func:`reconad.data.table_files.load_kddcup99`: ``normal.`` traffic is the anomaly class),
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

import logging
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from reconad.data.table_files import ADBENCH_DEFAULT, TabularData, find_kddcup99_file, load_adbench, load_kddcup99
from reconad.errors import ConfigError, DataError
from reconad.metrics import image_aupr, image_auroc
from reconad.protocols.results import Published, Results, write_results
from reconad.protocols.settings import TabularSettings
from reconad.protocols.settings import split_options as split_shared_options

log = logging.getLogger("reconad")

OUR_MODELS = ("ae", "vae", "memae", "esad")
PYOD_MODELS = ("pyod-ae", "iforest")
DEFAULT_MODELS = OUR_MODELS + PYOD_MODELS
KDD_DEFAULT_MODELS = ["ae", "vae", "memae", "esad", "iforest"]
#: models outside the registry that take labelled anomalies (registered models say so
#: themselves: ``uses_labels``)
SEMI_SUPERVISED: frozenset[str] = frozenset()
DEFAULT_LABEL_FRACTION = 0.1
TEST_FRACTION = 0.3
KDD_FLAG_FRACTION = 0.2
KDD_BATCH_SIZE = 1024

#: Published figures, shown beside ours and never produced here.
PUBLISHED_ESAD = Published(
    "ESAD",
    "Huang et al., arXiv 2012.04905",
    metric="AUROC, semi-supervised",
    values={"satellite": 0.925, "satimage-2": 0.999, "shuttle": 0.991, "cardio": 0.988},
)
PUBLISHED_KDD = [Published("DAGMM", "Zong et al., ICLR 2018", 0.9369, "F1")]
PUBLISHED_KDD_NOTE = (
    "MemAE's own KDDCUP99 figure (Gong et al., ICCV 2019) could not be confirmed with the sources "
    "at hand, so it is not listed."
)


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
        self.det = Detector(name, **{**options, "seed": seed}).check_params()  # made before any data is read

    def fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        self.det.fit(X.astype(np.float32), y if uses_labels(self.name) else None)

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


def uses_labels(name: str) -> bool:
    """Whether model ``name`` trains on labelled anomalies (``fit(X, y)``)."""
    from reconad.models import MODELS, model_uses_labels

    if name in SEMI_SUPERVISED:
        return True
    return name in MODELS and model_uses_labels(name)


def resolve_models(requested: list[str] | str | None) -> tuple[dict[str, Maker], dict[str, str]]:
    """(name -> maker for the runnable models, name -> why skipped)."""
    from reconad.models import MODELS, model_entry

    if isinstance(requested, str):
        requested = requested.split(",")
    names = [m.strip().lower() for m in requested if m.strip()] if requested else list(DEFAULT_MODELS)
    known = set(DEFAULT_MODELS) | set(EXTRA_MODELS) | set(MODELS)
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
    """Per-model options: ``key`` for all our models, ``model.key`` for that model only (PyOD's
    models take their own ``model.key`` ones only)."""
    return split_shared_options(options, models, PYOD_MODELS)


def _checked_options(makers: dict[str, Maker], options: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per-model options, each model built once so a bad option fails before any training."""
    per = split_options(dict(options or {}), list(makers))
    for name, maker in makers.items():
        try:
            maker(name, 0, per[name])
        except ConfigError as exc:  # ours: a bad option or value (Detector.check_params)
            raise ConfigError(f"model {name}: {exc}") from None
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
    X, y = split.training(uses_labels(name))
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


def _attempt(
    run: dict[str, Any], fit_and_score: Callable[[], tuple[np.ndarray, float]], y_test: np.ndarray, with_prf: bool
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
            for k in [*metrics, "seconds"]:
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


@dataclass
class Task:
    """What one protocol run covers: its data sets, how a seed splits one, what is measured."""

    protocol: str
    title: str
    datasets: dict[str, TabularData]
    split: Callable[[TabularData, int, float], Split]
    metrics: list[str]
    description: str
    published: list[Published]
    beside: Callable[[list[dict[str, Any]]], str] = lambda summary: ""


def _run_grid(
    task: Task,
    s: TabularSettings,
    makers: dict[str, Maker],
    per_opts: dict[str, dict[str, Any]],
    skipped: dict[str, str],
) -> dict[str, Any]:
    """Every model on every data set and seed (the same split for all models); results
    are rewritten after each seed, so a long run keeps what it has done."""
    grid = Grid(models=list(makers), skipped=skipped)
    runs, info, names = grid.runs, grid.info, grid.models
    with_prf = "precision" in task.metrics
    doc: dict[str, Any] = {}
    for data in task.datasets.values():
        for seed in s.seed_list():
            split = task.split(data, seed, s.label_fraction)
            info[data.name] = {
                "rows": len(data),
                "features": data.X.shape[1],
                "anomalies": data.n_anomalies,
                **split.sizes(),
            }
            for m in names:
                run = _attempt(
                    {"dataset": data.name, "model": m, "seed": seed},
                    partial(_run_one, m, makers[m], split, seed, per_opts[m]),
                    split.y_test,
                    with_prf,
                )
                runs.append(run)
                if s.echo and "error" not in run:
                    shown = " ".join(f"{k} {run[k]:.4f}" for k in task.metrics)
                    print(f"{data.name} seed {seed} {m}: {shown} ({run['seconds']:.1f}s)", flush=True)
            doc = _write(task, s, grid)
    return doc


@dataclass
class Grid:
    """What a run has done so far: its models, one record per (data set, seed, model), the data sizes."""

    models: list[str]
    skipped: dict[str, str]
    runs: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


def _write(task: Task, s: TabularSettings, grid: Grid) -> dict[str, Any]:
    """The one writer of both tabular protocols: a table per metric, the data, failures."""
    models, runs, info, skipped = grid.models, grid.runs, grid.info, grid.skipped
    done = [d for d in task.datasets if any(r["dataset"] == d for r in runs)]
    summary = _summary(runs, done, models, task.metrics)
    payload = {
        "description": task.description,
        "datasets": info,
        "models": models,
        "seeds": s.seed_list(),
        "label_fraction": s.label_fraction,
        "skipped": skipped,
        "runs": runs,
        "summary": summary,
    }
    if task.protocol == "kddcup99":
        data = next(iter(task.datasets.values()))
        payload.update(
            rows=len(data),
            features=int(data.X.shape[1]),
            anomalies=data.n_anomalies,
            split=info.get(data.name, {}),
            flag_fraction=KDD_FLAG_FRACTION,
        )
    else:
        payload["test_fraction"] = TEST_FRACTION
    data_text = (
        "; ".join(
            f"{d}: {info[d]['rows']} rows x {info[d]['features']} features, {info[d]['anomalies']} anomalies"
            for d in done
        )
        or "none run yet"
    )
    return write_results(
        s.out,
        Results(
            task.protocol,
            task.title,
            data_text,
            s.command,
            dict(s.options),
            payload,
            _markdown(task, s, grid, done, summary),
            task.published,
            "Published figures come from the papers' own protocols and labelled shares; shown for orientation only.",
        ),
    )


def _markdown(task: Task, s: TabularSettings, grid: Grid, done: list[str], summary: list[dict[str, Any]]) -> str:
    models, runs, info, skipped = grid.models, grid.runs, grid.info, grid.skipped
    lines = [
        f"Protocol: {task.description}.",
        "",
        f"Seeds: {', '.join(map(str, s.seed_list()))}; mean ± std (ddof=0) over seeds.",
        "",
    ]
    if skipped:
        lines += ["Skipped: " + "; ".join(f"{m} ({why})" for m, why in skipped.items()), ""]
    for metric in [*task.metrics, "seconds"]:
        title = METRIC_TITLES.get(metric, metric)
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
    lines += ["", task.beside(summary)]
    failed = [r for r in runs if "error" in r]
    if failed:
        lines += ["## Failures", ""]
        lines += [f"- {r['dataset']} seed {r['seed']} {r['model']}: {r['error']}" for r in failed] + [""]
    return "\n".join(lines)


METRIC_TITLES = {
    "auroc": "AUROC",
    "aupr": "AUPR",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "seconds": "Seconds (fit + score, mean per seed)",
}


def _esad_beside(summary: list[dict[str, Any]]) -> str:
    pub = PUBLISHED_ESAD
    lines = [
        f"## Ours beside the published {pub.method} ({pub.source}), semi-supervised, AUROC",
        "",
        "| dataset | published ESAD AUROC | our esad AUROC |",
        "|---|---|---|",
    ]
    for d, v in pub.values.items():
        row = next((r for r in summary if r["dataset"].lower() == d and r["model"] == "esad"), None)
        ours = _cell(row["auroc_mean"], row["auroc_std"]) if row else "not run"
        lines.append(f"| {d} | {v:.3f} | {ours} |")
    return "\n".join([*lines, ""])


def _tabular_task(s: TabularSettings) -> Task:
    loaded: dict[str, TabularData] = {}
    for name in s.datasets or list(ADBENCH_DEFAULT):  # all read first: a bad name fails before any training
        d = load_adbench(name, s.root())
        loaded.setdefault(d.name, d)
    semi = ", ".join(sorted(m for m in (s.models or DEFAULT_MODELS) if uses_labels(m))) or "none"
    description = (
        f"stratified {int((1 - TEST_FRACTION) * 100)}/{int(TEST_FRACTION * 100)} train/test split per seed; "
        "unsupervised models train on the normal rows of the train part; semi-supervised models "
        f"({semi}) also get {s.label_fraction:g} of the train part's anomalies, labelled; features standardised "
        "with the normal train rows' mean/std; scores on the test part"
    )
    published = [PUBLISHED_ESAD]
    return Task(
        "tabular", "Tabular benchmark", loaded, tabular_split, ["auroc", "aupr"], description, published, _esad_beside
    )


def _kdd_task(s: TabularSettings) -> Task:
    file = find_kddcup99_file(s.root())
    t0 = time.perf_counter()
    data = load_kddcup99(file)
    if s.echo:
        print(
            f"read {file}: {len(data)} rows, {data.X.shape[1]} features, {data.n_anomalies} 'normal.' rows "
            f"(the anomaly class) in {time.perf_counter() - t0:.0f}s",
            flush=True,
        )
    description = (
        "KDDCUP99 10% file; one-hot protocol_type/service/flag, min-max scaling over the file; "
        "'normal.' traffic is the anomaly class; random 50/50 split per seed; models train on the "
        "non-anomalous (attack) rows of the train half (semi-supervised models also get "
        f"{s.label_fraction:g} of the train half's anomalies, labelled); the top {KDD_FLAG_FRACTION:.0%} of test "
        f"scores are flagged anomalous; our models train with batch size {s.options.get('batch_size', KDD_BATCH_SIZE)}"
    )
    published = list(PUBLISHED_KDD)
    note = PUBLISHED_KDD_NOTE
    return Task(
        "kddcup99",
        "KDDCUP99 benchmark",
        {"kddcup99": data},
        kdd_split,
        ["precision", "recall", "f1", "auroc", "aupr"],
        description,
        published,
        lambda summary: note + "\n",
    )


def run(settings: TabularSettings) -> dict[str, Any]:
    """``tabular`` (ADBench sets) or ``kddcup99``: every model on the same splits; results.md/json."""
    s = settings  # checked when it was made (TabularSettings.check)
    kdd = s.protocol == "kddcup99"
    options = {k: v for k, v in s.options.items() if k != "seed"}  # each run's seed is one of s.seed_list()
    if "progress" in options:
        options["progress"] = False  # one bar per fit would bury the per-run lines
    if kdd:
        # ~200k training rows: DAGMM's batch size unless one is given (16 would take hours on a CPU)
        options = {"batch_size": KDD_BATCH_SIZE, **options}
    s = replace(s, options=options)
    task = _kdd_task if kdd else _tabular_task
    with torch_threads(s.threads):
        makers, skipped = resolve_models(s.models or (KDD_DEFAULT_MODELS if kdd else None))  # before loading data
        per_opts = _checked_options(makers, s.options)
        t = task(s)
        _warm_up()
        doc = _run_grid(t, s, makers, per_opts, skipped)
    if s.echo:
        print((Path(s.out) / "results.md").read_text())
    return doc


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
