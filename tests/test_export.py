"""ONNX export: parity with the PyTorch model, the dynamic batch axis, the JSON beside
the file, and ``reconad export`` / ``reconad predict --engine onnx``.

One small HFR (64 px, width 32, 1 epoch) is trained once per module on the tiny
texture set, so BatchNorm statistics and the residual normalisation are real.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from helpers.runs import SIZE, train_tiny_run
from reconad.errors import DataError, ModelFileError
from reconad.export import OnnxDetector
from reconad.runs import export_run, load_run

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]  # one training + export: ~15 s


@pytest.fixture(scope="module")
def run(single_thread, tiny_mvtec, tmp_path_factory):
    return train_tiny_run(tiny_mvtec, tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def exported(run):
    return export_run(run)


def _real_images() -> torch.Tensor:
    """Photographs shipped with scikit-image, resized the way the data loaders do."""
    import skimage.data

    from reconad.data.image_io import fit_to_size

    out = []
    for name in ("astronaut", "coffee", "chelsea", "camera"):
        arr = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
        x = torch.from_numpy(arr)
        x = x.expand(3, *x.shape) if x.ndim == 2 else x.permute(2, 0, 1)
        out.append(fit_to_size(x.contiguous(), SIZE, "resize").clamp(0, 1))
    return torch.stack(out)


def _assert_parity(det, session, images: torch.Tensor) -> None:
    with torch.inference_mode():
        s_t, m_t = det.model_.score_images(images)
    s_o, m_o = session(images)
    assert m_o.shape == tuple(m_t.shape) and s_o.shape == tuple(s_t.shape)
    m_t = m_t.numpy()
    for t, o in zip(m_t, m_o):  # per image, relative to that map's range
        assert np.abs(t - o).max() <= 1e-4 * (t.max() - t.min())
    np.testing.assert_allclose(s_o, s_t.numpy(), rtol=1e-4, atol=1e-4 * float(np.ptp(m_t)))


def test_onnx_matches_pytorch_on_random_and_real_images(run, exported):
    det, _ = load_run(run)
    session = OnnxDetector(exported)
    torch.manual_seed(0)
    _assert_parity(det, session, torch.rand(3, 3, SIZE, SIZE))
    _assert_parity(det, session, _real_images())


def test_batch_axis_is_dynamic(run, exported):
    session = OnnxDetector(exported)
    x = torch.rand(5, 3, SIZE, SIZE)
    s5, m5 = session(x)
    s1, m1 = session(x[:1])
    assert s5.shape == (5,) and m5.shape == (5, SIZE, SIZE) and s1.shape == (1,)
    np.testing.assert_allclose(s1, s5[:1], rtol=1e-5, atol=1e-6)


def test_json_beside_the_model_says_what_the_input_must_be(run, exported):
    det, _ = load_run(run)
    meta = json.loads(exported.with_suffix(".json").read_text())
    assert exported == run / "export" / "model.onnx"
    pre = meta["preprocessing"]
    assert pre["image_size"] == SIZE and pre["resize_mode"] == "resize" and pre["value_range"] == [0.0, 1.0]
    assert pre["shape"] == ["batch", 3, SIZE, SIZE] and pre["input_name"] == "images"
    norm = pre["normalisation_in_graph"]  # EfficientNet-Lite: (x - 127/255) / (128/255)
    assert norm["mean"] == pytest.approx(det.model_.encoder.mean.flatten().tolist())
    assert norm["std"] == pytest.approx(det.model_.encoder.std.flatten().tolist())
    assert set(meta["outputs"]) == {"scores", "maps"}
    assert meta["threshold"] == det.threshold_ and meta["threshold_basis"] == "fpr=0.25"
    assert meta["calibration"]["normal_scores"] == [float(s) for s in det.calibration_.normal_scores]


def test_cli_export_and_predict_with_onnxruntime_agree_with_torch(run, tiny_mvtec, tmp_path, capsys):
    from reconad.cli import main

    target = tmp_path / "m.onnx"
    assert main(["export", str(run), "--out", str(target)]) == 0
    assert target.exists() and target.with_suffix(".json").exists()
    assert "exported" in capsys.readouterr().out
    images = [str(tiny_mvtec / "brick" / "test" / d) for d in ("good", "hole")]
    rows = {}
    for engine in ("torch", "onnx"):
        out = tmp_path / engine
        assert main(["predict", str(run), *images, "--out", str(out), "--engine", engine, "--quiet"]) == 0
        with open(out / "scores.csv") as fh:
            rows[engine] = list(csv.DictReader(fh))
    assert len(rows["onnx"]) == len(rows["torch"]) == 5
    for a, b in zip(rows["torch"], rows["onnx"]):
        assert a["path"] == b["path"] and a["label"] == b["label"]
        assert float(b["score"]) == pytest.approx(float(a["score"]), rel=1e-4, abs=1e-5)
        assert b["p_value"] == a["p_value"]


def test_bad_inputs_are_refused(run, exported, tmp_path):
    from reconad.cli import main

    with pytest.raises(DataError):
        OnnxDetector(exported)(np.zeros((2, 1, SIZE, SIZE), dtype=np.float32))
    with pytest.raises(ModelFileError):
        OnnxDetector(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ModelFileError):
        OnnxDetector(broken)
    assert main(["predict", str(run), str(tmp_path / "nothing"), "--out", str(tmp_path / "o"), "--engine", "onnx"]) == 2


def test_cpu_micro_batches_give_the_same_scores_and_maps():
    from reconad.models import build_model

    torch.manual_seed(0)
    net = build_model("hfr", width=16, bottleneck=8).eval()
    x = torch.rand(5, 3, 32, 32)
    net.cpu_micro_batch_pixels = 2 * 32 * 32  # micro-batches of 2, 2 and 1
    assert net.micro_batch(x) == 2
    with torch.inference_mode():
        s_split, m_split = net.score_images(x)
        net.cpu_micro_batch_pixels = None
        assert net.micro_batch(x) is None
        s_whole, m_whole = net.score_images(x)
    torch.testing.assert_close(s_split, s_whole, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(m_split, m_whole, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_speed_protocol_reports_both_engines_and_the_flop_floor(tmp_path):
    from reconad.protocols import SpeedSettings, run_protocol

    settings = SpeedSettings(
        model="hfr",
        image_size=32,
        n_train=12,
        out=str(tmp_path),
        echo=False,
        n_images=2,
        rounds=1,
        options=dict(epochs=1, width=16, bottleneck=8, device="cpu", patience=None),
    )
    r = run_protocol("speed", settings)
    for engine in ("torch", "onnx", "onnx_int8"):
        assert r[f"end_to_end_images_per_second_{engine}"] > 0  # the predict path, beside the engine alone
        for b in (1, 16):
            assert r[f"images_per_second_{engine}_batch{b}"] > 0
            assert r[f"ms_per_image_{engine}_batch{b}"] == pytest.approx(
                1000 / r[f"images_per_second_{engine}_batch{b}"]
            )
            assert 0 < r[f"fraction_of_flop_floor_{engine}_batch{b}"]
        assert 50 < r[f"peak_rss_mib_inference_{engine}"] < 4096
    assert r["gflop_per_image"] > 0 and r["matmul_gflops_per_second"] > 0
    assert (tmp_path / "profile_batch16.txt").read_text().count("aten::") > 3
    assert set(r["profile"]["1"]["ms_per_image"]) >= {"encoder", "decoder", "scoring and maps"}
    assert json.loads((tmp_path / "speed.json").read_text())["protocol"] == "speed"


def test_zero_pads_are_folded_into_the_convolutions(exported):
    import onnx

    graph = onnx.load(str(exported)).graph
    readers = {i: n.op_type for n in graph.node for i in n.input}
    zero_pads_before_convs = [
        n.name
        for n in graph.node
        if n.op_type == "Pad"
        and readers.get(n.output[0]) == "Conv"
        and all(a.s in (b"", b"constant") for a in n.attribute if a.name == "mode")
    ]
    assert not zero_pads_before_convs
    assert any(len(a.ints) == 4 and a.ints[0] != a.ints[2] for n in graph.node for a in n.attribute if a.name == "pads")


def test_nearest_distances_are_one_gemm_in_the_export(run, exported):
    """HFR's bottleneck term: |b|^2 - 2 a.b in one Gemm against the bank, no full distance matrix."""
    import onnx

    assert load_run(run)[0].model_.config.hybrid == "bottleneck"
    ops = [n.op_type for n in onnx.load(str(exported)).graph.node]
    assert ops.count("Gemm") == 1 and "MatMul" not in ops
