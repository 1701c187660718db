"""Engines of reconad.inference and reconad.quantize: ONNX Runtime by default wherever the run
has a valid export (PyTorch otherwise, and ``auto`` never writes one), the export checked
against the model file, and the int8 export offered only where its accuracy check passes.

One tiny HFR run (tests/helpers/runs.py) is trained per module and copied where a test
edits it.
"""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from helpers.runs import train_tiny_run
from reconad.errors import ConfigError, ModelFileError
from reconad.inference import DEFAULT_ENGINE, INT8_FILE, open_run
from reconad.runs import evaluate_run

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def run(single_thread, tiny_mvtec, tmp_path_factory):
    return train_tiny_run(tiny_mvtec, tmp_path_factory.mktemp("run"))


@pytest.fixture()
def fresh_run(run, tmp_path):
    """A copy of the run without any export (tests that write or edit exports)."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("export"))
    return copy


def _predict(run, images, out, *extra):
    from reconad.cli import main

    code = main(["predict", str(run), *map(str, images), "--out", str(out), "--quiet", *extra])
    rows = list(csv.DictReader(open(out / "scores.csv"))) if code == 0 else []
    return code, rows


def _assert_distances_stay_float(path):
    """The nearest-neighbour Gemm of an int8 export reads its bank and |b|^2 in float."""
    import onnx

    graph = onnx.load(str(path)).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert gemms and all(producers.get(i) != "DequantizeLinear" for n in gemms for i in n.input[1:])


def _engine_of(out):
    return json.loads((out / "predict.json").read_text())["engine"]


def test_auto_runs_an_existing_export_and_otherwise_torch_without_writing_one(fresh_run, tiny_mvtec, tmp_path):
    from reconad.runs import export_run

    assert DEFAULT_ENGINE == "auto"
    images = [tiny_mvtec / "brick" / "test" / "hole"]
    code, torch_rows = _predict(fresh_run, images, tmp_path / "before")
    assert code == 0 and _engine_of(tmp_path / "before") == "torch"
    assert not (fresh_run / "export").exists()  # predicting writes no export
    export_run(fresh_run)  # the explicit step
    code, rows = _predict(fresh_run, images, tmp_path / "auto")
    assert code == 0 and _engine_of(tmp_path / "auto") == "onnx"
    assert len(rows) == len(torch_rows) == 1
    assert float(rows[0]["score"]) == pytest.approx(float(torch_rows[0]["score"]), rel=1e-4, abs=1e-5)


def test_test_runs_on_onnx_by_default_and_agrees_with_torch(fresh_run):
    from reconad.runs import export_run

    export_run(fresh_run)
    m_onnx = evaluate_run(fresh_run)
    assert json.loads((fresh_run / "metrics.json").read_text())["engine"] == "onnx"
    m_torch = evaluate_run(fresh_run, engine="torch")
    assert m_torch["engine"] == "torch"
    for key in ("image_auroc", "pixel_auroc", "pro"):
        assert m_onnx[key] == pytest.approx(m_torch[key], abs=1e-3)


def test_a_foreign_export_is_refused_by_predict(fresh_run, run, tiny_mvtec, tmp_path, capsys):
    from reconad.runs import export_run

    export_run(fresh_run)
    meta_path = fresh_run / "export" / "model.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "weights_sha256": "f" * 64}))  # as if copied from another run
    code, _ = _predict(fresh_run, [tiny_mvtec / "brick" / "test" / "hole"], tmp_path / "o")
    assert code == 2 and "stale or foreign" in capsys.readouterr().err
    code, _ = _predict(fresh_run, [tiny_mvtec / "brick" / "test" / "hole"], tmp_path / "t", "--engine", "torch")
    assert code == 0  # PyTorch does not read the export


def test_models_of_table_rows_have_no_image_pipeline_and_say_so_in_one_line(tmp_path):
    from reconad.detector import Detector
    from reconad.inference import NotImages

    rows = np.random.default_rng(0).normal(size=(64, 5)).astype(np.float32)
    det = Detector("ae", epochs=1, progress=False).fit(rows)
    for engine in ("torch", "onnx", "onnx-int8"):
        with pytest.raises(NotImages, match="scores table rows") as caught:
            det.pipeline(engine)
        assert isinstance(caught.value, ConfigError) and "\n" not in str(caught.value)
    assert det.decision_function(rows[:3]).shape == (3,)  # the model itself still scores its rows


def test_int8_export_records_its_accuracy_check_and_the_engine_obeys_it(fresh_run, tiny_mvtec, tmp_path, monkeypatch):
    import reconad.quantize as quantize

    images = [tiny_mvtec / "brick" / "test" / "hole"]
    code, _ = _predict(fresh_run, images, tmp_path / "none", "--engine", "onnx-int8")
    assert code == 2  # no int8 export yet: the line says how to make one
    monkeypatch.setattr(quantize, "TOLERANCE", -1.0)  # nothing passes
    result = quantize.quantize_run(fresh_run)
    assert not result.offered and (fresh_run / INT8_FILE).exists()
    meta = json.loads((fresh_run / INT8_FILE).with_suffix(".json").read_text())
    check = meta["accuracy_check"]
    assert check["offered"] is False and set(check["float"]) >= {"image_auroc", "pixel_auroc", "pro", "detection_rate"}
    assert meta["quantization"]["method"].startswith("onnxruntime static") and meta["weights_sha256"]
    code, _ = _predict(fresh_run, images, tmp_path / "refused", "--engine", "onnx-int8")
    assert code == 2
    monkeypatch.setattr(quantize, "TOLERANCE", 1.0)  # everything passes
    monkeypatch.setattr(quantize, "RATE_TOLERANCE", 1.0)
    assert quantize.quantize_run(fresh_run).offered
    meta = json.loads((fresh_run / INT8_FILE).with_suffix(".json").read_text())
    _assert_distances_stay_float(fresh_run / INT8_FILE)
    own = meta["int8_calibration"]  # int8 scores the held-out normals itself: its own threshold
    assert own["threshold"] is not None and "int8" in own["source"]
    run_cal = json.loads((fresh_run / "model" / "config.json").read_text())["calibration"]
    assert own["n_normal"] == run_cal["n_normal"]  # the same images the float threshold came from
    int8 = open_run(fresh_run, "onnx-int8")
    assert int8.calibrated.engine == "onnx-int8" and int8.threshold == pytest.approx(own["threshold"])
    assert open_run(fresh_run, "onnx").calibrated.engine == "float"
    code, rows = _predict(fresh_run, images, tmp_path / "int8", "--engine", "onnx-int8")
    _, float_rows = _predict(fresh_run, images, tmp_path / "float", "--engine", "onnx")
    assert code == 0 and len(rows) == 1
    # int8 is close, not equal: on this tiny model its scores stand 0.7-1.5x the float ones
    int8_score, float_score = float(rows[0]["score"]), float(float_rows[0]["score"])
    assert int8_score != float_score and int8_score == pytest.approx(float_score, rel=0.5)


def test_a_changed_int8_file_is_refused(fresh_run, monkeypatch):
    import reconad.quantize as quantize
    from reconad.inference import int8_export
    from reconad.serialization import recorded_sha256

    monkeypatch.setattr(quantize, "TOLERANCE", 1.0)
    quantize.quantize_run(fresh_run)
    path = fresh_run / INT8_FILE
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelFileError, match="checksum"):
        int8_export(fresh_run, recorded_sha256(fresh_run / "model"))


def test_the_int8_verdict_bounds_the_change_both_ways():
    from reconad.quantize import TOLERANCE, _verdict

    base = {"image_auroc": 0.9, "pixel_auroc": 0.95, "pro": 0.8}
    assert _verdict(base, dict(base))[0]
    assert not _verdict(base, {**base, "pro": 0.8 + 2 * TOLERANCE})[0]  # a rise is a change too
    assert not _verdict(base, {**base, "pixel_auroc": 0.95 - 2 * TOLERANCE})[0]
    offered, reason = _verdict({**base, "pro": None}, base)
    assert not offered and "pro" in reason


def test_quantize_with_out_is_refused_before_anything_is_written(fresh_run, tmp_path, capsys):
    from reconad.cli import main

    target = tmp_path / "elsewhere.onnx"
    assert main(["export", str(fresh_run), "--quantize", "int8", "--out", str(target)]) == 2
    assert "--quantize" in capsys.readouterr().err
    assert not target.exists() and not (fresh_run / "export").exists()
