"""The one-class protocol runner, on scikit-learn's digits (fast, no external data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reconad.cli import main
from reconad.data.class_datasets import load_one_class_set
from reconad.errors import ConfigError
from reconad.protocols import OneClassSettings, run_protocol
from reconad.protocols.one_class import _class_split, knn_scores, labelled_anomalies

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("oc")
    settings = OneClassSettings(
        dataset="digits", classes=[0, 1], out=str(out), options={"epochs": 3, "progress": False}, echo=False
    )
    result = run_protocol("one-class", settings)
    return out, result


def test_runner_writes_well_formed_tables(digits_result):
    out, result = digits_result
    saved = json.loads((out / "results.json").read_text())
    assert saved["dataset"] == "digits" and saved["model"] == "hfr"
    assert set(saved["per_class"]) == {"0", "1"} and set(saved["seconds_per_class"]) == {"0", "1"}
    assert saved["mean"] == pytest.approx(np.mean(list(saved["per_class"].values())))
    assert set(saved["knn_per_class"]) == {"0", "1"}
    assert "stratified 70/30" in saved["data"] and saved["settings"]["epochs"] == 3
    # the semantic-anomaly settings the runner uses unless told otherwise, recorded
    model_settings = saved["details"]["model_settings"]
    assert (model_settings["hybrid"], model_settings["hybrid_weight"], model_settings["score"]) == (
        "patch",
        4.0,
        "topk",
    )
    md = (out / "results.md").read_text()
    assert "| class | name | hfr AUROC | kNN AUROC | PatchCore AUROC | seconds |" in md
    assert set(saved["patchcore_per_class"]) == {"0", "1"}
    assert "## Published, not reproduced here" not in md  # no paper reports this set
    assert saved["published"]["rows"] == [] and saved["machine"]["cpus"] >= 1
    assert md.count("\n| 0 |") == 1 and "| mean |" in md


def test_model_of_one_digit_scores_that_digit_lower(digits_result):
    _, result = digits_result
    for c, auroc in result["per_class"].items():
        assert auroc > 0.8, (c, auroc)  # far above chance (0.5)


def test_knn_scores_nearest_distance():
    import torch

    train = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]])
    test = torch.tensor([[0.0, 0.0], [5.0, 0.0]])
    s = knn_scores(train, test, k=2)
    assert s == pytest.approx([0.5, 4.5])


def test_labelled_anomalies_ratio_and_source():
    data = load_one_class_set("digits")
    n = int((data.train_y == 3).sum())
    idx = labelled_anomalies(data, 3, n, 0.05, seed=0)
    assert len(idx) == round(0.05 * n / 0.95)
    assert (data.train_y[idx] != 3).all() and len(set(idx)) == len(idx)
    assert len(labelled_anomalies(data, 3, n, 0.0, seed=0)) == 0
    with pytest.raises(ConfigError):
        labelled_anomalies(data, 3, n, 1.0, seed=0)


def test_train_per_class_draws_a_seeded_subset_of_that_class_and_keeps_the_test_split(tmp_path, capsys):
    data = load_one_class_set("digits")
    full = OneClassSettings(dataset="digits", model="ae")
    small = OneClassSettings(dataset="digits", model="ae", train_per_class=40)
    x_all, _, y_test_all, _ = _class_split(data, 3, full, seed=0)
    x, _, y_test, _ = _class_split(data, 3, small, seed=0)
    assert len(x) == 40 < len(x_all)
    rows = {r.tobytes() for r in x_all}
    assert all(r.tobytes() in rows for r in x)  # a subset of the class's own images
    assert np.array_equal(y_test, y_test_all)
    again, _, _, _ = _class_split(data, 3, small, seed=0)
    other, _, _, _ = _class_split(data, 3, small, seed=1)
    assert np.array_equal(again, x) and not np.array_equal(other, x)
    for bad in (["--train-per-class", "0"], ["--train-per-class", "5", "--anomalous-class"]):
        out = tmp_path / "out"
        argv = ["benchmark", "--protocol", "one-class", "--dataset", "digits", "--out", str(out), *bad]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "--train-per-class" in err[0]
        assert not out.exists()


def test_cli_one_class_errors(capsys, tmp_path):
    assert main(["benchmark", "--protocol", "one-class", "--out", str(tmp_path)]) == 2
    assert "--dataset is required" in capsys.readouterr().err
    assert (
        main(
            ["benchmark", "--protocol", "one-class", "--dataset", "digits", "--classes", "0,12", "--out", str(tmp_path)]
        )
        == 2
    )
    assert "unknown class" in capsys.readouterr().err
    assert (
        main(
            [
                "benchmark",
                "--protocol",
                "one-class",
                "--dataset",
                "digits",
                "--labelled-ratio",
                "0.1",
                "--out",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "normal data only" in capsys.readouterr().err
    assert main(["benchmark", "--protocol", "one-class", "--dataset", "cifar10", "--out", str(tmp_path)]) == 2
    assert "--root is required" in capsys.readouterr().err


def test_small_images_warn_for_the_semantic_settings(tmp_path):
    with pytest.warns(UserWarning, match="1x1 grid"):
        settings = OneClassSettings(
            dataset="digits",
            classes=[0],
            image_size=32,
            out=str(tmp_path),
            options={"epochs": 1, "progress": False},
            echo=False,
        )
        run_protocol("one-class", settings)


def test_seeds_run_each_class_once_per_seed_and_report_the_spread(tmp_path):
    """--seeds 2: one model per class and seed, the per-class mean over seeds, the spread beside it."""
    out = tmp_path / "seeds"
    argv = ["benchmark", "--protocol", "one-class", "--dataset", "digits", "--classes", "3", "--model", "ae"]
    assert main([*argv, "--epochs", "1", "--seed", "4", "--seeds", "2", "--out", str(out), "--quiet"]) == 0
    saved = json.loads((out / "results.json").read_text())
    d = saved["details"]
    assert d["seeds"] == [4, 5] and set(d["per_seed"]) == {"4", "5"}
    runs = [d["per_seed"][s]["3"] for s in ("4", "5")]
    assert runs[0] != runs[1]  # the seed reaches the model: two different fits
    assert saved["per_class"]["3"] == pytest.approx(np.mean(runs))
    assert d["per_class_std"]["3"] == pytest.approx(np.std(runs))
    assert {p.name for p in out.glob("partial*.json")} == {"partial-seed4.json", "partial-seed5.json"}
    md = (out / "results.md").read_text()
    assert "std over seeds" in md and "Seeds 4, 5:" in md


def test_seeds_must_be_a_positive_count(tmp_path, capsys):
    argv = ["benchmark", "--protocol", "one-class", "--dataset", "digits", "--seeds", "0", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--seeds must be a whole number >= 1" in err and "\n" not in err
