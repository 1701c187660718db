"""The parity contract over the model registry: every engine a model supports scores as the facade does.

Every registered image model is fitted once (one epoch on a toy, ``helpers.minimal_models``)
and saved through ``Detector.save``; then, on the same PNGs, ``reconad predict --engine
torch``, the ONNX file of ``reconad export`` under ONNX Runtime and ``reconad predict
--engine onnx`` give the facade's PyTorch scores and maps within 1e-5 of their range
(``helpers.parity.tolerance``) and the same verdicts at the threshold; models that cannot
export refuse ``export`` and ``--engine onnx`` in one line; the server answers an uploaded PNG
with ``reconad predict``'s score and verdict; the int8 export either passes its accuracy check
and scores within it, or is refused in one line.  ``benchmarks/engine_parity.py`` prints the
same measurements as a table (BENCHMARKS.md §18.1).
"""

from __future__ import annotations

import contextlib
import csv
import json

import httpx
import numpy as np
import pytest

from helpers.minimal_models import minimal_detector, table_models
from helpers.parity import CSV_STEP, cli, export, fit_run, image_models, onnx_runtime, predict, tolerance, verdicts
from helpers.serve import server_thread

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def fitted(single_thread, tmp_path_factory):
    """Each image model fitted, saved and exported (where it exports) once, lazily by name;
    its ``reconad predict`` rows per engine cached beside it."""
    root = tmp_path_factory.mktemp("parity")
    cache: dict[str, tuple] = {}

    def get(name: str):
        if name not in cache:
            fr = fit_run(name, root)
            refusal = export(fr)
            rows = {engine: predict(fr, engine, root / f"{name}-{engine}") for engine in ("torch", "onnx")}
            cache[name] = (fr, refusal, rows)
        return cache[name]

    return get


def _flags(rows) -> np.ndarray:
    return np.array([r["label"] == "1" for r in rows])


def _same_verdicts(flags: np.ndarray, want: np.ndarray, scores: np.ndarray, threshold: float, tol: float) -> None:
    """Equal verdicts, except for a score within the parity bound of the threshold (either side is right)."""
    decided = np.abs(scores - threshold) > tol
    assert np.array_equal(flags[decided], want[decided]), (flags, want)


def _one_line_refusal(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert all(w in lines[0] for w in words), err


@pytest.mark.parametrize("name", image_models())
def test_reconad_predict_with_torch_gives_the_facade_scores_and_verdicts(name, fitted):
    fr, _, rows = fitted(name)
    want, threshold = fr.reference["scores"], float(fr.det.threshold_)
    code, got = rows["torch"]
    assert code == 0, got
    scores = np.array([float(r["score"]) for r in got])
    tol = tolerance(want, CSV_STEP)
    assert np.abs(scores - want).max() <= tol
    _same_verdicts(_flags(got), verdicts(want, threshold), want, threshold, tol)
    np.testing.assert_array_equal(fr.det.predict(fr.images) == 1, verdicts(want, threshold))


@pytest.mark.parametrize("name", image_models())
def test_onnx_engine_gives_the_facade_scores_maps_and_verdicts_or_refuses_in_one_line(name, fitted):
    fr, (code, err), rows = fitted(name)
    if not fr.exported:
        _one_line_refusal(code, err, f"cannot export {name}")
        _one_line_refusal(*rows["onnx"], "--engine onnx", name)
        assert not (fr.run / "export" / "model.onnx").exists()
        return
    ref, threshold = fr.reference, float(fr.det.threshold_)
    scores, maps = onnx_runtime(fr.run / "export" / "model.onnx", fr.images)
    assert maps.shape == ref["maps"].shape
    assert np.abs(scores - ref["scores"]).max() <= tolerance(ref["scores"])
    assert np.abs(maps - ref["maps"]).max() <= tolerance(ref["maps"])
    code, got = rows["onnx"]
    assert code == 0, got
    tol = tolerance(ref["scores"], CSV_STEP)
    csv_scores = np.array([float(r["score"]) for r in got])
    assert np.abs(csv_scores - ref["scores"]).max() <= tol
    _same_verdicts(_flags(got), verdicts(ref["scores"], threshold), ref["scores"], threshold, tol)


def test_models_that_cannot_export_are_the_ones_that_say_so(fitted):
    """At least one image model refuses (AnoGAN's search is no single graph) and most export."""
    refused = [n for n in image_models() if not fitted(n)[0].exported]
    assert "anogan" in refused and len(refused) < len(image_models()) // 2


@pytest.mark.parametrize("name", table_models())
def test_table_variants_refuse_export_in_one_line(name, tmp_path):
    minimal_detector(name, rows=True).save(tmp_path / "run" / "model")
    _one_line_refusal(*cli(["export", str(tmp_path / "run")]), f"cannot export {name}")
    assert not (tmp_path / "run" / "export").exists()


def video_models() -> list[str]:
    from reconad.models import MODELS, model_entry

    return [n for n in MODELS if "video" in model_entry(n)[0].input_kinds]


@pytest.mark.parametrize("name", video_models())
def test_video_variants_score_clips_with_torch_and_refuse_onnx_in_one_line(name, single_thread, tmp_path):
    """One epoch on moving-shape clips through the facade; ``reconad predict`` scores every frame
    of a clip folder with PyTorch and refuses ``--engine onnx`` in one line."""
    from reconad import Detector
    from reconad.data.video import ClipWindows, load_ucsd_split, write_moving_shapes

    root = write_moving_shapes(tmp_path / "clips", n_train=1, n_test=1, n_frames=12, size=(24, 32))
    train = load_ucsd_split(root, "training", (24, 32))
    from reconad.models import model_entry
    from reconad.models.base import scores_streams

    small = {} if scores_streams(model_entry(name)[0]) else {"width": 4}  # a frame model has no width
    det = Detector(name, epochs=1, batch_size=4, progress=False, device="cpu", patience=None, **small)
    det.fit(ClipWindows(train, 4, 2)).save(tmp_path / "run" / "model")
    clip = root / "testing" / "frames" / "01"
    _one_line_refusal(
        *cli(["predict", str(tmp_path / "run"), str(clip), "--out", str(tmp_path / "o"), "--engine", "onnx"]),
        "--engine onnx",
        name,
    )
    assert (
        cli(
            ["predict", str(tmp_path / "run"), str(clip), "--out", str(tmp_path / "t"), "--engine", "torch", "--quiet"]
        )[0]
        == 0
    )
    with open(tmp_path / "t" / "scores.csv", newline="") as fh:
        assert len(list(csv.DictReader(fh))) == 12


@pytest.fixture(scope="module")
def servers(fitted, tmp_path_factory):
    """Two servers holding every image model: PyTorch, and ``auto`` (the run's ONNX export where
    it has one); both micro-batch as they do in production (``max_batch`` 4)."""
    from reconad.serve.app import create_app
    from reconad.serve.config import ServeConfig, ServedRun

    runs = [ServedRun(n, str(fitted(n)[0].run)) for n in image_models()]
    root = tmp_path_factory.mktemp("parity-serve")
    with contextlib.ExitStack() as stack:
        urls = {}
        for engine in ("torch", "auto"):
            db = f"sqlite:///{root / engine}.db"
            app = create_app(ServeConfig(runs=runs, db=db, engine=engine, threads=1, keep_overlays="none"))
            urls[engine] = stack.enter_context(server_thread(app))
        yield urls


def _server_cases():
    for name in image_models():
        for engine in ("torch", "auto"):
            yield pytest.param(engine, name, id=f"{engine}-{name}")


@pytest.mark.parametrize(("engine", "name"), list(_server_cases()))
def test_the_server_answers_an_uploaded_png_as_reconad_predict_does(engine, name, fitted, servers):
    """Each PNG uploaded on its own: the served score and verdict are ``reconad predict``'s."""
    fr, _, rows = fitted(name)
    used = "torch" if engine == "torch" or not fr.exported else "onnx"
    code, want = rows[used]
    assert code == 0
    tol = tolerance(fr.reference["scores"], CSV_STEP)
    with httpx.Client(base_url=servers[engine], timeout=120) as client:
        for path, row in zip(fr.files, want):
            answer = client.post(f"/v1/models/{name}/score", files=[("images", (path.name, path.read_bytes()))])
            assert answer.status_code == 200, answer.text
            (got,) = answer.json()["results"]
            assert got["engine"] == used
            assert abs(got["score"] - float(row["score"])) <= tol, (path.name, got["score"], row["score"])
            assert (got["verdict"] == "anomalous") == (row["label"] == "1"), path.name


def _train(root, model: str, out, *options: str) -> None:
    args = ["train", "--model", model, "--root", str(root), "--category", "brick", "--out", str(out)]
    assert cli([*args, "--image-size", "32", "--epochs", "1", "--quiet", *options]) == (0, "")


def test_int8_is_offered_exactly_when_its_accuracy_check_is_within_tolerance(single_thread, tiny_mvtec, tmp_path):
    """``reconad export --quantize int8`` on a trained run records the float and int8 test-split
    metrics; int8 is offered iff every one moves by at most ``quantize.TOLERANCE``.  Offered, it
    scores the test split and flags at its own recorded threshold; not offered, ``--engine
    onnx-int8`` refuses in one line naming the run."""
    from reconad.quantize import CHECKED, TOLERANCE

    run = tmp_path / "run"
    _train(tiny_mvtec, "hfr", run, "--set", "width=8", "--set", "bottleneck=8")
    assert cli(["export", str(run), "--quantize", "int8"])[0] == 0
    meta = json.loads((run / "export" / "model.int8.json").read_text())
    check = meta["accuracy_check"]
    gaps = [abs(check["float"][k] - check["int8"][k]) for k in CHECKED if check["float"][k] is not None]
    rates = [
        abs(check["float"][k] - check["int8"][k]) <= max(check["rate_tolerance"], 1 / check["int8"][n]) + 1e-12
        for k, n in (("detection_rate", "n_anomalous"), ("false_alarm_rate", "n_normal"))
        if check["float"][k] is not None and check["int8"][k] is not None
    ]
    assert check["offered"] == (len(gaps) == len(CHECKED) and max(gaps) <= TOLERANCE and all(rates))
    images = sorted((tiny_mvtec / "brick" / "test").rglob("*.png"))
    out = tmp_path / "int8"
    code, err = cli(["predict", str(run), *map(str, images), "--out", str(out), "--engine", "onnx-int8", "--quiet"])
    if not check["offered"]:
        _one_line_refusal(code, err, "int8 is not offered", str(run))
        return
    assert code == 0, err
    with open(out / "scores.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(images)
    if meta["threshold"] is not None:
        scores = np.array([float(r["score"]) for r in rows])
        _same_verdicts(_flags(rows), scores > meta["threshold"], scores, meta["threshold"], CSV_STEP)


@pytest.mark.parametrize("model", ["ae", "esad"])
def test_int8_export_of_an_autoencoder_quantizes(model, single_thread, tiny_mvtec, tmp_path):
    """ONNX Runtime's symbolic shape inference cannot follow the decoder's Reshape: the
    graph is pre-processed without it and quantized, its check recorded (offered or not)."""
    run = tmp_path / "run"
    _train(tiny_mvtec, model, run, "--set", "width=4")
    code, err = cli(["export", str(run), "--quantize", "int8"])
    assert code == 0, err
    check = json.loads((run / "export" / "model.int8.json").read_text())["accuracy_check"]
    assert set(check["int8"]) >= {"image_auroc", "detection_rate", "false_alarm_rate"}
