"""The tabular / kddcup99 benchmark runners on tiny fixtures (fake models; PyOD when installed)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

import reconad.models
from reconad.cli import main
from reconad.data.table_files import TabularData, load_adbench
from reconad.errors import ConfigError
from reconad.protocols import Kddcup99Settings, TabularSettings, run_protocol
from reconad.protocols import tabular as tab
from test_tabular_data import kdd_line


class MeanDistance:
    """A fake model: distance to the training mean; records what it was fitted on."""

    seen: list[tuple[str, int, np.ndarray, np.ndarray | None, dict]] = []

    def __init__(self, name: str, seed: int, options: dict) -> None:
        self.name, self.seed, self.options = name, seed, options

    def fit(self, X: np.ndarray, y: np.ndarray | None) -> None:
        MeanDistance.seen.append((self.name, self.seed, X.copy(), None if y is None else y.copy(), self.options))
        self.mu = X[y == 0].mean(axis=0) if y is not None else X.mean(axis=0)

    def score(self, X: np.ndarray) -> np.ndarray:
        return np.linalg.norm(X - self.mu, axis=1)


class Broken(MeanDistance):
    def fit(self, X, y):
        raise RuntimeError("boom")


@pytest.fixture
def fakes(monkeypatch):
    MeanDistance.seen = []
    monkeypatch.setitem(tab.EXTRA_MODELS, "fake", MeanDistance)
    monkeypatch.setitem(tab.EXTRA_MODELS, "fake2", MeanDistance)
    monkeypatch.setitem(tab.EXTRA_MODELS, "fakesemi", MeanDistance)
    monkeypatch.setitem(tab.EXTRA_MODELS, "broken", Broken)
    monkeypatch.setattr(tab, "SEMI_SUPERVISED", frozenset({"esad", "fakesemi"}))
    return MeanDistance


def run_tab(data_root, out, protocol: str = "tabular", models: str | None = None, **kw):
    cls = Kddcup99Settings if protocol == "kddcup99" else TabularSettings
    settings = cls(
        data_root=str(data_root), out=str(out), models=models.split(",") if models else None, echo=False, **kw
    )
    return run_protocol(protocol, settings)


def blob(seed: int, n: int = 200, n_anom: int = 20, d: int = 4, shift: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.arange(1, d + 1) + 10.0
    y = np.zeros(n, dtype=np.int64)
    y[:n_anom] = 1
    X[:n_anom] += shift * np.arange(1, d + 1)
    return X, y


@pytest.fixture
def adbench_root(tmp_path) -> Path:
    root = tmp_path / "adbench"
    root.mkdir()
    for i, name in enumerate(("toya", "toyb"), 1):
        X, y = blob(i)
        np.savez(root / f"{i}_{name}.npz", X=X, y=y)
    return root


# ----------------------------------------------------------------------------- splits


def test_tabular_split_is_stratified_clean_and_standardised():
    X, y = blob(0, n=300, n_anom=30)
    data = TabularData(X, y, [f"x{i}" for i in range(4)], name="b")
    s = tab.tabular_split(data, seed=3, label_fraction=0.1)
    assert len(s.test) == 90 and int(s.y_test.sum()) == 9  # 30% test, anomalies stratified
    assert len(s.train_normal) == 189 and len(s.labelled) == 2  # 210 train: 189 normal, 21 anomalies -> 2
    np.testing.assert_allclose(s.train_normal.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(s.train_normal.std(axis=0), 1, atol=1e-9)
    Xu, yu = s.training(semi_supervised=False)
    assert yu is None and len(Xu) == 189
    Xs, ys = s.training(semi_supervised=True)
    assert len(Xs) == 191 and ys.tolist() == [0] * 189 + [1, 1]
    assert (s.labelled.mean(axis=0) > 1).all()  # they really are the shifted anomalies
    same = tab.tabular_split(data, seed=3, label_fraction=0.1)
    other = tab.tabular_split(data, seed=4, label_fraction=0.1)
    np.testing.assert_array_equal(same.test, s.test)
    assert not np.array_equal(other.test, s.test)
    assert len(tab.tabular_split(data, seed=3, label_fraction=0.0).labelled) == 0


def test_kdd_split_halves_and_trains_on_non_anomalous_rows_only():
    X, y = blob(1, n=101, n_anom=21)
    s = tab.kdd_split(TabularData(X, y, [f"x{i}" for i in range(4)]), seed=0, label_fraction=0.0)
    assert len(s.test) == 51
    n_train_anom = 21 - int(s.y_test.sum())
    assert len(s.train_normal) == 50 - n_train_anom
    assert not np.isin(s.train_normal[:, 0], X[y == 1, 0]).any()


def test_top_fraction_prf_by_hand():
    labels = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    scores = np.array([9, 8, 1, 0, 0, 0, 0, 0, 0, 7.0])  # top 2 of 10 flagged: rows 0 and 1
    r = tab.top_fraction_prf(labels, scores, fraction=0.2)
    assert r["precision"] == pytest.approx(0.5)
    assert r["recall"] == pytest.approx(1 / 3)
    assert r["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    assert tab.top_fraction_prf(labels, -scores, 0.2)["f1"] == 0.0


# ----------------------------------------------------------------------------- runner


def test_tabular_runner_writes_results_on_the_same_splits(fakes, adbench_root, tmp_path):
    out = tmp_path / "out"
    res = run_tab(
        adbench_root,
        out,
        datasets=["toya", "TOYB"],
        seeds=2,
        models="fake,fake2,fakesemi",
        label_fraction=0.2,
        options={"epochs": 3, "fake2.k": 7},
    )
    assert {(s["dataset"], s["model"]) for s in res["summary"]} == {
        (d, m) for d in ("toya", "toyb") for m in ("fake", "fake2", "fakesemi")
    }
    for s in res["summary"]:
        assert s["seeds"] == 2 and s["failed"] == 0
        assert s["auroc_mean"] > 0.9 and 0 <= s["auroc_std"] < 0.1 and s["aupr_mean"] > 0.5
    # every model saw the same training rows for a dataset and seed; the semi-supervised one plus labels
    by = {}
    for name, seed, X, y, opts in fakes.seen:
        by.setdefault(seed, {}).setdefault(name, []).append((X, y, opts))
    for seed in (0, 1):
        for (xa, ya, _), (xb, yb, _), (xs, ys, _) in zip(by[seed]["fake"], by[seed]["fake2"], by[seed]["fakesemi"]):
            np.testing.assert_array_equal(xa, xb)
            assert ya is None and yb is None
            assert ys is not None and ys.sum() == 3 and len(xs) == len(xa) + 3  # 14 train anomalies x 0.2
            np.testing.assert_array_equal(xs[: len(xa)], xa)
    assert not np.array_equal(by[0]["fake"][0][0], by[1]["fake"][0][0])
    # options: common keys for all, "model.key" for that model only
    assert by[0]["fake"][0][2] == {"epochs": 3}
    assert by[0]["fake2"][0][2] == {"epochs": 3, "k": 7}

    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["protocol"] == "tabular" and on_disk["seeds"] == [0, 1] and len(on_disk["runs"]) == 12
    assert on_disk["datasets"]["toya"]["labelled_anomalies"] == 3
    md = (out / "results.md").read_text()
    assert "## AUROC" in md and "## AUPR" in md and "## Seconds" in md and " ± " in md
    assert "| toya |" in md and "| fake | fake2 | fakesemi |" in md
    assert "Published, not reproduced here" in md and "| satellite | 0.925 | not run |" in md


def test_failures_are_recorded_not_fatal_and_missing_models_skipped(fakes, adbench_root, tmp_path, monkeypatch):
    monkeypatch.delitem(reconad.models.MODELS, "ae", raising=False)
    monkeypatch.setattr(tab, "pyod_available", lambda: False)
    res = run_tab(adbench_root, tmp_path / "o", datasets=["toya"], seeds=1, models="fake,broken,ae,iforest")
    assert "not registered" in res["skipped"]["ae"]
    assert "PyOD is not installed" in res["skipped"]["iforest"]
    broken = [r for r in res["runs"] if r["model"] == "broken"]
    assert broken and broken[0]["error"] == "RuntimeError: boom"
    md = (tmp_path / "o" / "results.md").read_text()
    assert "## Failures" in md and "boom" in md and "Skipped: ae" in md
    with pytest.raises(ConfigError, match="no model to run"):
        run_tab(adbench_root, tmp_path / "p", datasets=["toya"], seeds=1, models="iforest")
    with pytest.raises(ConfigError, match="unknown model"):
        tab.resolve_models("fake,nonsense")
    with pytest.raises(ConfigError, match="not one of the models run"):
        tab.split_options({"memae.x": 1}, ["fake"])


def test_pyod_models_run_on_the_same_split(adbench_root, tmp_path):
    pytest.importorskip("pyod")
    res = run_tab(adbench_root, tmp_path / "o", datasets=["toya"], seeds=1, models="iforest")
    assert res["summary"][0]["model"] == "iforest" and res["summary"][0]["auroc_mean"] > 0.8


def test_kddcup99_runner_on_a_fixture_file(fakes, tmp_path):
    rng = np.random.default_rng(0)
    lines = []
    for i in range(200):
        if i % 5 == 0:  # 20% "normal." rows: the anomaly class, large src_bytes
            lines.append(kdd_line("tcp", "http", "SF", 5000 + int(rng.integers(0, 100)), "normal."))
        else:
            lines.append(kdd_line("icmp", "ecr_i", "SF", int(rng.integers(0, 100)), "smurf.", count=511))
    path = tmp_path / "kddcup.data_10_percent.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    res = run_tab(tmp_path, tmp_path / "o", "kddcup99", seeds=2, models="fake")
    assert res["rows"] == 200 and res["anomalies"] == 40 and res["split"]["test"] == 100
    for r in res["runs"]:  # a perfect ranking: 20 flagged of ~20 anomalies in the test half
        assert r["auroc"] == 1.0 and max(r["precision"], r["recall"]) == 1.0 and r["f1"] > 0.8
    assert fakes.seen[0][4] == {"batch_size": 1024}  # DAGMM's batch size unless one is given
    s = res["summary"][0]
    md = (tmp_path / "o" / "results.md").read_text()
    assert f"| kddcup99 | {s['precision_mean']:.3f} ± {s['precision_std']:.3f} |" in md and "## F1" in md
    assert "DAGMM" in md and "0.9369" in md and "not reproduced here" in md


# -------------------------------------------------------------------------------- CLI


def test_cli_tabular_end_to_end(fakes, adbench_root, tmp_path, capsys):
    out = tmp_path / "cli"
    import torch

    before = torch.get_num_threads()
    rc = main(
        [
            "benchmark",
            "--protocol",
            "tabular",
            "--data-root",
            str(adbench_root),
            "--datasets",
            "toya,toyb",
            "--models",
            "fake,fakesemi",
            "--seeds",
            "2",
            "--seed",
            "5",
            "--label-fraction",
            "0.5",
            "--set",
            "fake.alpha=0.1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    assert torch.get_num_threads() == before  # one thread during the run, restored after
    res = json.loads((out / "results.json").read_text())
    assert res["machine"]["torch_threads"] == 1
    assert res["seeds"] == [5, 6] and res["label_fraction"] == 0.5 and len(res["summary"]) == 4
    assert res["datasets"]["toyb"]["labelled_anomalies"] == 7
    assert (out / "results.md").read_text().startswith("# Tabular benchmark")
    # option routing: fake gets its own option and progress off; fakesemi only the common ones
    opts = {name: o for name, _, _, _, o in fakes.seen}
    assert opts["fake"] == {"progress": False, "alpha": 0.1} and opts["fakesemi"] == {"progress": False}


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--datasets", "toya,nope"], "unknown dataset 'nope'"),
        (["--models", "fake,zzz"], "unknown model(s) 'zzz'"),
        (["--seeds", "0"], "--seeds must be >= 1"),
        (["--label-fraction", "1.5"], "--label-fraction must be in [0, 1]"),
        (["--set", "threads=0"], "--threads must be a whole number >= 1"),  # the old spelling of --threads 0
    ],
)
def test_cli_errors_are_one_line(fakes, adbench_root, tmp_path, capsys, extra, message):
    argv = [
        "benchmark",
        "--protocol",
        "tabular",
        "--data-root",
        str(adbench_root),
        "--models",
        "fake",
        "--datasets",
        "toya",
        "--out",
        str(tmp_path / "o"),
        "--quiet",
    ]
    rc = main(argv + extra)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("reconad: error:") and message in err and "\n" not in err


def test_cli_needs_a_data_root(tmp_path, capsys):
    for protocol in ("tabular", "kddcup99"):
        assert main(["benchmark", "--protocol", protocol, "--out", str(tmp_path / "o"), "--quiet"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("reconad: error: give --data-root") and "\n" not in err


def test_loaded_names_are_canonical(adbench_root):
    assert load_adbench("TOYA", adbench_root).name == "toya"


@pytest.mark.slow
def test_our_registered_models_run_through_the_detector(adbench_root, tmp_path):
    """ae (unsupervised) and esad (semi-supervised, gets labels) end to end, 2 epochs."""
    runnable, skipped = tab.resolve_models("ae,esad")
    if skipped:
        pytest.skip(f"not in this build: {skipped}")
    res = run_tab(
        adbench_root,
        tmp_path / "o",
        datasets=["toya"],
        seeds=1,
        models="ae,esad",
        options={"epochs": 2, "progress": False},
    )
    assert not [r for r in res["runs"] if "error" in r], res["runs"]
    for s in res["summary"]:
        assert 0.0 <= s["auroc_mean"] <= 1.0 and s["seconds_mean"] > 0


def test_set_prefix_reaches_pyod_models_too():
    per = tab.split_options({"pyod_ae.epoch_num": 20, "epochs": 3}, ["pyod-ae", "ae"])
    assert per == {"pyod-ae": {"epoch_num": 20}, "ae": {"epochs": 3}}
