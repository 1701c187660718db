"""reconad.inference: one immutable fitted pipeline (spec, engine, tiler, calibration,
identity) built from a Detector or a run folder; engines agree with PyTorch; bad input is
one line naming the option or the file."""

from __future__ import annotations

import warnings
from dataclasses import FrozenInstanceError

import numpy as np
import pytest

from helpers.minimal_models import minimal_detector
from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.inference import EXPORT_FILE, INT8_FILE, open_run

pytestmark = pytest.mark.usefixtures("single_thread")
SIZE = 32  # minimal_detector's HFR input


@pytest.fixture(scope="module")
def hfr(single_thread):
    return minimal_detector("hfr")


@pytest.fixture()
def run(hfr, tmp_path):
    hfr.save(tmp_path / "run" / "model")
    return tmp_path / "run"


def _images(n: int = 5, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 3, SIZE, SIZE)).astype(np.float32)


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    """Largest difference relative to the range of ``a`` (its spread, or its size when flat)."""
    span = max(float(np.ptp(a)), float(np.abs(a).max()), 1e-12)
    return float(np.abs(np.asarray(a) - np.asarray(b)).max()) / span


def test_a_pipeline_is_immutable_and_another_tiling_is_a_new_pipeline(hfr):
    pipe = hfr.pipeline()
    with pytest.raises(FrozenInstanceError):
        pipe.batch_size = 1  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        pipe.calibrated.threshold = 0.0  # type: ignore[misc]
    with pytest.warns(UserWarning, match="verdict is dropped"):
        tiled = pipe.with_tiling(16, 4)
    assert tiled is not pipe and tiled.tiling == (16, 4) and tiled.threshold is None
    assert pipe.tiler is None and pipe.threshold == hfr.threshold_  # the first one is unchanged
    assert pipe.with_threshold(1.0).threshold == 1.0 and pipe.threshold == hfr.threshold_


def test_the_fingerprint_changes_with_engine_and_tiling_and_names_the_files(run):
    from reconad.serialization import recorded_sha256, sha256_of

    a, b = open_run(run, "torch"), open_run(run, "torch")
    assert a.fingerprint == b.fingerprint and len(a.fingerprint) == 64
    assert a.identity.model_sha256 == recorded_sha256(run / "model")
    assert not (run / EXPORT_FILE).exists()
    onnx = a.with_engine("onnx")  # asked for by name: the export is written now
    assert onnx.engine == "onnx" and (run / EXPORT_FILE).exists()
    assert onnx.identity.engine_file_sha256 == sha256_of(run / EXPORT_FILE)
    assert onnx.fingerprint != a.fingerprint
    assert open_run(run, "auto").fingerprint == onnx.fingerprint  # auto runs the existing export
    with pytest.warns(UserWarning):
        retiled = open_run(run, "torch", tile_size=16)
    assert retiled.fingerprint != a.fingerprint and a.tiling is None


def test_auto_without_an_export_is_torch_and_writes_nothing(run):
    assert open_run(run).engine == "torch"
    assert not (run / "export").exists()


def test_torch_and_onnx_agree_within_1e_5_of_range_with_the_same_verdicts(run):
    torch_pipe = open_run(run, "torch")
    onnx_pipe = torch_pipe.with_engine("onnx")
    x = _images()
    s_t, m_t = torch_pipe.score_batch(x)
    s_o, m_o = onnx_pipe.score_batch(x)
    assert m_t is not None and m_o is not None and m_o.shape == m_t.shape == (5, SIZE, SIZE)
    assert _gap(s_t, s_o) <= 1e-5 and _gap(m_t, m_o) <= 1e-5
    threshold = float(np.median(s_t))  # a threshold inside the scores, so verdicts differ per image
    labels_t = torch_pipe.with_threshold(threshold).labels(s_t)
    assert labels_t is not None and 0 < labels_t.sum() < len(labels_t)
    np.testing.assert_array_equal(labels_t, onnx_pipe.with_threshold(threshold).labels(s_o))


def test_openvino_agrees_with_torch_where_it_is_installed(run):
    pytest.importorskip("openvino")
    torch_pipe = open_run(run, "torch")
    ov = open_run(run, "openvino")
    assert ov.engine == "openvino" and ov.fingerprint != torch_pipe.fingerprint
    x = _images()
    (s_t, m_t), (s_v, m_v) = torch_pipe.score_batch(x), ov.score_batch(x)
    assert _gap(s_t, s_v) <= 1e-5 and _gap(m_t, m_v) <= 1e-5


def test_a_detectors_pipeline_is_what_its_methods_score_with(hfr):
    pipe = hfr.pipeline()
    x = _images(4, seed=2)
    hwc = x.transpose(0, 2, 3, 1)
    scores = hfr.decision_function(hwc)
    direct, _ = pipe.score_batch(x)
    np.testing.assert_allclose(scores, direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(hfr.predict(hwc), pipe.labels(scores))
    np.testing.assert_array_equal(hfr.p_values(hwc), pipe.p_values(scores))
    onnx = pipe.with_engine("onnx")  # a Detector's export goes to a temporary folder
    assert onnx.engine == "onnx" and onnx.origin.engine_file is not None and onnx.origin.engine_file.exists()
    assert _gap(direct, onnx.score_batch(x)[0]) <= 1e-5


def _one_line(exc: BaseException, *names: str) -> None:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    for name in names:
        assert name in text


def test_bad_input_is_one_line_naming_the_option_or_the_file(run):
    with pytest.raises(DataError) as info:
        open_run(run, "tensorrt")
    _one_line(info.value, "--engine tensorrt")
    with pytest.raises(ConfigError) as info:
        open_run(run, "onnx-int8")  # no int8 export: the file and the command that makes it
    _one_line(info.value, str(run / INT8_FILE), "--quantize int8")
    open_run(run, "onnx")
    with pytest.raises(ConfigError) as info:
        open_run(run, "onnx", tile_size=16)  # the export takes whole 32-px images
    _one_line(info.value, "--engine onnx", str(run / EXPORT_FILE))
    with pytest.raises(DataError) as info:
        open_run(run, "torch", tile_overlap=4)
    _one_line(info.value, "--tile-overlap")
    export = run / EXPORT_FILE
    export.write_bytes(export.read_bytes() + b"\0")
    with pytest.raises(ModelFileError) as info:
        open_run(run, "auto")  # a changed export is refused, never silently used nor replaced
    _one_line(info.value, str(export), "checksum")
    weights = run / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\1")
    with pytest.raises(ModelFileError) as info:
        open_run(run, "torch")
    _one_line(info.value, str(weights))


def test_another_tiling_drops_the_verdict_and_says_so(run):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe = open_run(run, "torch", tile_size=16, tile_overlap=4)
    assert [w for w in caught if "the verdict is dropped" in str(w.message)]
    assert pipe.threshold is None and "verdict is dropped" in pipe.calibrated.note
    scores, maps = pipe.score_images([_images(1)[0]])
    assert maps is not None and maps[0].shape == (SIZE, SIZE) and scores.shape == (1,)
    assert np.isnan(pipe.p_values(scores)).all() and pipe.labels(scores) is None


def test_an_edited_config_is_refused_even_where_the_export_would_not_need_it(run):
    import json

    open_run(run, "onnx")  # the export
    config = run / "model" / "config.json"
    saved = json.loads(config.read_text())
    edited = {**saved, "model_config": {**saved["model_config"], "width": 999}}
    config.write_text(json.dumps(edited))
    with pytest.raises(ModelFileError) as info:
        open_run(run, "auto")  # ONNX Runtime would run without the model options
    _one_line(info.value, str(config), "width")
    config.write_text(json.dumps({**saved, "detector": {**saved["detector"], "image_size": "big"}}))
    with pytest.raises(ModelFileError) as info:
        open_run(run, "auto")
    _one_line(info.value, str(config), "image_size")
