"""A sweep of bad inputs and faults over every command and many models, as one table.

Each case builds its fixture (a broken data root, an edited copy of a run, a stray file),
runs one command line through ``reconad.cli.main`` or one Python call, and expects one
outcome class:

* ``GOOD``: exit code 2 (from Python: a ``ReconadError`` subclass) with exactly one
  stderr line ``reconad: error: ...`` (``reconad <cmd>: error: ...`` for argparse) that
  holds the case's phrase (the file, option or value at fault), no traceback; a run the
  case points at is left byte for byte as it was;
* ``OK``: valid but unusual input that must succeed (exit 0, nothing on stderr but warnings).

A failing case says how it failed: ``[BAD]`` (a traceback or an exception of another class,
bad input accepted, a wrong result, a run changed) or ``[POOR]`` (refused, but not in one line
naming the input); ``benchmarks/reliability_sweep.py`` counts them into BENCHMARKS §23.1's
table, on this tree or an older one.  Round 3 added a case per registered model for ``train``
and the Python API, ``weights``, and the data-path classes (``predict --resume`` into another
job's folder, edited ``config.json`` values, video options, protocol settings, DataFrame
columns); the clip cases share one tiny video run, trained when first asked for.

Nearly every case fails at validation, before any training: one tiny HFR run is trained once
for the module (``helpers.runs.train_tiny_run``), the export refusals use the smallest fitted
VAE / AnoGAN (``helpers.minimal_models``), and the Python cases fit one-epoch 16 px models.
Serve cases never start a server: ``uvicorn.run`` is replaced by a failure.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.minimal_models import minimal_detector
from helpers.runs import train_tiny_run
from reconad import Detector
from reconad.cli import main
from reconad.data.table_files import load_csv
from reconad.errors import ConfigError, DataError, ModelFileError, ReconadError

pytestmark = pytest.mark.usefixtures("single_thread")

GOOD, OK = "GOOD", "OK"


@dataclass
class Fx:
    """What a case's fixture and command see: ``tmp`` (the case's own folder), ``root`` (the
    tiny texture set, read-only), ``run`` (the module's HFR run, read-only)."""

    tmp: Path
    root: Path
    run: Path
    video_run: Callable[[], Path] = field(default=lambda: Path("/nonexistent"))

    @property
    def copy(self) -> Path:
        """A copy of the module's run, made on first use."""
        copy = self.tmp / "copy"
        if not copy.exists():
            shutil.copytree(self.run, copy)
        return copy

    def names(self) -> dict[str, str]:
        return {"tmp": str(self.tmp), "root": str(self.root), "run": str(self.run)}

    @property
    def video(self) -> Path:
        """The module's tiny video (clip) run, trained on first use."""
        return self.video_run()


@dataclass
class Case:
    """One row of the sweep: ``argv`` (with ``{tmp}``, ``{root}``, ``{run}``, ``{copy}``
    placeholders) or ``call`` (a Python call), ``setup`` (builds the fixture), the outcome
    class, the phrase the error must hold, and for Python calls the error class expected."""

    id: str
    cmd: str
    argv: list[str] | None = None
    call: Callable[[Fx], Any] | None = None
    setup: Callable[[Fx], None] | None = None
    expect: str = GOOD
    phrase: str = ""
    error: type[Exception] = ReconadError
    marks: list[Any] = field(default_factory=list)
    #: for OK cases: checks what the command wrote or the call returned
    after: Callable[[Fx, Any], None] | None = None
    #: an OK case whose command writes the run it names (train --overwrite)
    writes_run: bool = False

    def param(self) -> Any:
        return pytest.param(self, id=self.id, marks=self.marks)


# ------------------------------------------------------------------ fixtures


def _train(*extra: str, root: str = "{root}", out: str = "{tmp}/new", model: str = "hfr") -> list[str]:
    data = ["--dataset", "mvtec", "--root", root, "--category", "brick", "--image-size", "32"]
    return ["train", "--model", model, *data, "--out", out, "--epochs", "1", "--device", "cpu", "--quiet", *extra]


def _broken_root(fx: Fx, write: Callable[[Path], None] | None = None, keep: bool = True) -> None:
    """``{tmp}/data``: a copy of the tiny set (without training images unless ``keep``),
    then ``write(train/good)``."""
    shutil.copytree(fx.root, fx.tmp / "data")
    good = fx.tmp / "data" / "brick" / "train" / "good"
    if not keep:
        shutil.rmtree(good)
        good.mkdir()
    if write is not None:
        write(good)


def _truncated_png(good: Path) -> None:
    first = sorted(good.glob("*.png"))[0].read_bytes()
    (good / "zz_truncated.png").write_bytes(first[: len(first) // 2])


def _empty_train(fx: Fx) -> None:
    _broken_root(fx, keep=False)


def _only_text_in_train(fx: Fx) -> None:
    _broken_root(fx, lambda good: (good / "notes.txt").write_text("not an image"), keep=False)


def _zero_byte_png(fx: Fx) -> None:
    _broken_root(fx, lambda good: (good / "zz_empty.png").write_bytes(b""))


def _no_train_folder(fx: Fx) -> None:
    _broken_root(fx)
    shutil.rmtree(fx.tmp / "data" / "brick" / "train")


def _a_file(fx: Fx, name: str = "afile", text: str = "not a folder") -> None:
    (fx.tmp / name).write_text(text)


def _labelled_folder(fx: Fx) -> None:
    shutil.copytree(fx.root / "brick" / "test" / "hole", fx.tmp / "labelled")


def _edit_json(path: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _run_json_dataset(fx: Fx) -> None:
    _edit_json(fx.copy / "run.json", lambda d: d["data"].update(dataset="nosuchlayout"))


def _run_json_root(fx: Fx) -> None:
    _edit_json(fx.copy / "run.json", lambda d: d["data"].update(root=str(fx.tmp / "moved")))


def _run_json_extra_key(fx: Fx) -> None:
    _edit_json(fx.copy / "run.json", lambda d: d["data"].update(colour="red"))


def _config_image_size(fx: Fx) -> None:
    _edit_json(fx.copy / "model" / "config.json", lambda d: d["detector"].update(image_size="big"))


def _config_width(fx: Fx) -> None:
    _edit_json(fx.copy / "model" / "config.json", lambda d: d["model_config"].update(width="wide"))


def _config_not_json(fx: Fx) -> None:
    (fx.copy / "model" / "config.json").write_text("{not json")


def _truncated_weights(fx: Fx) -> None:
    path = fx.copy / "model" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])


def _garbage_weights(fx: Fx) -> None:
    (fx.copy / "model" / "model.safetensors").write_bytes(b"\x00" * 64)


def _foreign_export(fx: Fx) -> None:
    """A model.onnx that is not the run's own (another file put in its place)."""
    (fx.copy / "export").mkdir(exist_ok=True)
    (fx.copy / "export" / "model.onnx").write_bytes(b"not an onnx graph")


def _model_run(name: str) -> Callable[[Fx], None]:
    def build(fx: Fx) -> None:
        minimal_detector(name).save(fx.tmp / name / "model")

    return build


def _images_folder(fx: Fx, files: dict[str, bytes]) -> None:
    (fx.tmp / "in").mkdir()
    for name, data in files.items():
        (fx.tmp / "in" / name).write_bytes(data)


def _empty_input_folder(fx: Fx) -> None:
    _images_folder(fx, {})


def _empty_input_and_no_export(fx: Fx) -> None:
    """No export yet: ``--engine auto`` would write one on first use, which a refused input must not."""
    shutil.rmtree(fx.copy / "export")
    _images_folder(fx, {})


def _text_input(fx: Fx) -> None:
    _images_folder(fx, {"readme.txt": b"hello"})


def _garbage_png_input(fx: Fx) -> None:
    _images_folder(fx, {"broken.png": b"\x89PNG\r\n\x1a\n garbage"})


def _latin1_csv(fx: Fx) -> None:
    (fx.tmp / "latin.csv").write_bytes("d\xe9bit,label\n1,0\n2,1\n".encode("latin-1"))


def _headerless_csv(fx: Fx) -> None:
    (fx.tmp / "rows.csv").write_text("0.5,1.5,0\n2.5,3.5,1\n")


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))[1:]


def _listed_and_scored(fx: Fx, rc: int) -> None:
    """The unreadable PNG is listed with its reason; the readable image is scored."""
    errors, scores = _rows(fx.tmp / "p" / "errors.csv"), _rows(fx.tmp / "p" / "scores.csv")
    assert [Path(r[0]).name for r in errors] == ["broken.png"] and "cannot read image" in errors[0][1]
    assert len(scores) == 1 and math.isfinite(float(scores[0][1]))


def _two_features(fx: Fx, data: Any) -> None:
    assert data.feature_names == ["c0", "c1"]
    np.testing.assert_array_equal(data.y, [0, 1])


def _fitted(fx: Fx, det: Any) -> None:
    assert det.threshold_ is not None and math.isfinite(det.threshold_)


# ------------------------------------------------------------ Python calls

FAST: dict[str, Any] = {"epochs": 1, "progress": False, "device": "cpu", "patience": None}


def _images(n: int = 12, size: int = 16, dtype: Any = np.float32) -> np.ndarray:
    return np.random.default_rng(0).random((n, size, size, 3)).astype(dtype)


def _small(name: str) -> Detector:
    size = 32 if name in ("patchcore", "hfr") else 16
    opts = {"width": 4} if name not in ("patchcore", "rx", "hadgan") else {}
    return Detector(name, image_size=size, **FAST, **opts)


def _fit_with_labels(name: str) -> Callable[[Fx], Any]:
    def call(fx: Fx) -> Any:
        size = 32 if name == "patchcore" else 16
        return _small(name).fit(_images(12, size), np.ones(12))  # every sample marked anomalous

    return call


def _nan_images(fx: Fx) -> Any:
    x = _images()
    x[3, 2, 2, 1] = np.nan
    return _small("ae").fit(x)


def _bright_images(fx: Fx) -> Any:
    return _small("ae").fit(_images() * 4)


def _table_maps(fx: Fx) -> Any:
    rows = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    det = Detector("ae", **FAST, width=4).fit(rows)
    return det.anomaly_map(rows[:3])


def _rows_with_other_width(fx: Fx) -> Any:
    rows = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    det = Detector("ae", **FAST, width=4).fit(rows)
    return det.decision_function(rows[:3, :4])


def _fit_missing_path(fx: Fx) -> Any:
    return _small("ae").fit([str(fx.tmp / "gone.png")])


def _fit_empty_array(fx: Fx) -> Any:
    return _small("ae").fit(np.zeros((0, 16, 16, 3), np.float32))


def _load_missing(fx: Fx) -> Any:
    return Detector.load(fx.tmp / "nowhere")


def _not_fitted(fx: Fx) -> Any:
    return Detector("ae").decision_function(_images(2))


CASES: list[Case] = [
    # ------------------------------------------------------------------ train
    Case("train-folder-root-missing", "train", ["train", "--dataset", "folder", "--root", "{tmp}/gone", "--out", "{tmp}/r"], phrase="{tmp}/gone"),
    Case("train-root-is-a-file", "train", _train(root="{tmp}/afile"), setup=_a_file, phrase="dataset root is a file, not a folder: {tmp}/afile"),
    Case("train-category-without-train-folder", "train", _train(root="{tmp}/data"), setup=_no_train_folder, phrase="train"),
    Case("train-empty-train-folder", "train", _train(root="{tmp}/data"), setup=_empty_train, phrase="no training images"),
    Case("train-only-text-files", "train", _train(root="{tmp}/data"), setup=_only_text_in_train, phrase="no training images"),
    Case("train-truncated-png", "train", _train(root="{tmp}/data", model="ae"), setup=lambda fx: _broken_root(fx, _truncated_png), phrase="zz_truncated.png"),
    Case("train-zero-byte-png", "train", _train(root="{tmp}/data", model="ae"), setup=_zero_byte_png, phrase="zz_empty.png"),
    Case("train-set-lr-json-nan", "train", _train("--set", "lr=NaN"), phrase="lr must be a finite number"),
    Case("train-set-epochs-fraction", "train", _train("--set", "epochs=1.5"), phrase="epochs must be an integer"),
    Case("train-set-batch-size-bool", "train", _train("--set", "batch_size=true"), phrase="batch_size must be an integer"),
    Case("train-set-ae-width-negative", "train", _train("--set", "width=-4", model="ae"), phrase="width"),
    Case("train-set-vae-latent-zero", "train", _train("--set", "latent_dim=0", model="vae"), phrase="latent_dim"),
    Case("train-set-memae-memory-nan", "train", _train("--set", "shrink_threshold=NaN", model="memae"), phrase="shrink_threshold"),
    Case("train-set-patchcore-unknown-key", "train", _train("--set", "neighbours=3", model="patchcore"), phrase="neighbours"),
    Case("train-set-patchcore-coreset-ratio", "train", _train("--set", "coreset_ratio=2", model="patchcore"), phrase="coreset_ratio"),
    Case("train-set-ganomaly-unknown-key", "train", _train("--set", "w_rec=3", model="ganomaly"), phrase="w_rec"),
    Case("train-set-anogan-lr-d-string", "train", _train("--set", "lr_d=fast", model="anogan"), phrase="lr_d"),
    Case("train-set-rsrae-training-mode", "train", _train("--set", "training=sometimes", model="rsrae"), phrase="sometimes"),
    Case("train-set-cavga-variant", "train", _train("--set", "variant=z", model="cavga"), phrase="variant"),
    Case("train-set-fanogan-n-critic-zero", "train", _train("--set", "n_critic=0", model="fanogan"), phrase="n_critic"),
    Case("train-set-val-fraction-one", "train", _train("--set", "val_fraction=1"), phrase="val_fraction"),
    Case("train-set-optimizer-unknown", "train", _train("--set", "optimizer=rmsprop"), phrase="rmsprop"),
    Case("train-device-unknown", "train", _train("--device", "tpu"), phrase="tpu"),
    Case("train-preset-unknown", "train", _train("--preset", "fastest"), phrase="fastest"),
    Case("train-fpr-above-one", "train", _train("--fpr", "1.5"), phrase="fpr"),
    Case("train-lr-negative", "train", _train("--lr", "-0.1"), phrase="lr must be > 0"),
    Case("train-batch-size-zero", "train", _train("--batch-size", "0"), phrase="--batch-size"),
    Case("train-image-size-zero", "train", _train("--image-size", "0"), phrase="--image-size"),
    Case("train-image-size-text", "train", _train("--image-size", "big"), phrase="--image-size"),
    Case("train-resize-mode-unknown", "train", _train("--resize-mode", "stretch"), phrase="stretch"),
    Case("train-tile-size-zero", "train", _train("--tile-size", "0"), phrase="--tile-size"),
    Case("train-seed-negative", "train", _train("--seed", "-1"), phrase="--seed"),
    Case("train-table-only-model-on-images", "train", _train(model="rx"), phrase="rx"),
    Case("train-existing-run-no-overwrite", "train", _train(out="{run}"), phrase="already holds a run"),
    Case("train-out-under-a-file", "train", _train(out="{tmp}/afile/run"), setup=_a_file, phrase="{tmp}/afile"),
    Case("train-labelled-anomalies-is-a-file", "train", _train("--labelled-anomalies", "{tmp}/afile"), setup=_a_file, phrase="{tmp}/afile"),
    Case("train-labelled-anomalies-for-ae", "train", _train("--labelled-anomalies", "{tmp}/labelled", model="ae"), setup=_labelled_folder, phrase="--labelled-anomalies: model ae trains on normal data only"),
    Case("train-labelled-anomalies-for-ganomaly", "train", _train("--labelled-anomalies", "{tmp}/labelled", model="ganomaly"), setup=_labelled_folder, phrase="--labelled-anomalies: model ganomaly trains"),
    Case("train-backbone-weights-missing", "train", _train("--backbone", "resnet18", "--backbone-weights", "{tmp}/w.pt"), phrase="{tmp}/w.pt"),
    # ------------------------------------------------------------------- test
    Case("test-run-is-a-file", "test", ["test", "{tmp}/afile"], setup=_a_file, phrase="{tmp}/afile"),
    Case("test-run-json-unknown-dataset", "test", ["test", "{copy}", "--quiet"], setup=_run_json_dataset, phrase="nosuchlayout"),
    Case("test-run-json-root-moved", "test", ["test", "{copy}", "--quiet"], setup=_run_json_root, phrase="{tmp}/moved"),
    Case("test-run-json-unknown-key", "test", ["test", "{copy}", "--quiet"], setup=_run_json_extra_key, phrase="run.json"),
    Case("test-config-json-image-size-text", "test", ["test", "{copy}", "--quiet"], setup=_config_image_size, phrase="image_size"),
    Case("test-config-json-width-text", "test", ["test", "{copy}", "--quiet"], setup=_config_width, phrase="width"),
    Case("test-config-json-not-json", "test", ["test", "{copy}", "--quiet"], setup=_config_not_json, phrase="config.json"),
    Case("test-truncated-safetensors", "test", ["test", "{copy}", "--quiet"], setup=_truncated_weights, phrase="model.safetensors"),
    Case("test-zeroed-safetensors", "test", ["test", "{copy}", "--quiet"], setup=_garbage_weights, phrase="model.safetensors"),
    Case("test-heatmaps-text", "test", ["test", "{run}", "--heatmaps", "all"], phrase="--heatmaps"),
    Case("test-engine-onnx-foreign-export", "test", ["test", "{copy}", "--quiet", "--engine", "onnx"], setup=_foreign_export, phrase="model.onnx"),
    Case("test-engine-unknown", "test", ["test", "{run}", "--engine", "tensorrt"], phrase="tensorrt"),
    Case("test-root-missing", "test", ["test", "{run}", "--dataset", "mvtec", "--root", "{tmp}/gone"], phrase="{tmp}/gone"),
    Case("test-tile-overlap-beyond-tile", "test", ["test", "{run}", "--tile-size", "32", "--tile-overlap", "32"], phrase="overlap"),
    # ----------------------------------------------------------------- report
    Case("report-missing-run", "report", ["report", "{tmp}/gone"], phrase="{tmp}/gone"),
    Case("report-run-json-not-json", "report", ["report", "{copy}"], setup=lambda fx: (fx.copy / "run.json").write_text("[1,"), phrase="run.json"),
    # ---------------------------------------------------------------- predict
    Case("predict-missing-run", "predict", ["predict", "{tmp}/gone", "{root}/brick/test/good", "--out", "{tmp}/p"], phrase="{tmp}/gone"),
    Case("predict-folder-without-images", "predict", ["predict", "{run}", "{tmp}/in", "--out", "{tmp}/p"], setup=_empty_input_folder, phrase="{tmp}/in"),
    Case("predict-no-images-before-first-export", "predict", ["predict", "{copy}", "{tmp}/in", "--out", "{tmp}/p"], setup=_empty_input_and_no_export, phrase="no images found in: {tmp}/in"),
    Case("predict-text-file", "predict", ["predict", "{run}", "{tmp}/in/readme.txt", "--out", "{tmp}/p"], setup=_text_input, phrase="none of the 1 image(s) could be read (cannot read image: {tmp}/in/readme.txt"),
    Case("predict-garbage-png-strict", "predict", ["predict", "{run}", "{tmp}/in", "--out", "{tmp}/p", "--strict", "--quiet"], setup=_garbage_png_input, phrase="broken.png"),
    Case("predict-out-under-a-file", "predict", ["predict", "{run}", "{root}/brick/test/hole", "--out", "{tmp}/afile/p"], setup=_a_file, phrase="{tmp}/afile"),
    Case("predict-int8-without-export", "predict", ["predict", "{copy}", "{root}/brick/test/hole", "--out", "{tmp}/p", "--engine", "onnx-int8"], phrase="int8"),
    Case("predict-garbage-png-listed", "predict", ["predict", "{run}", "{tmp}/in", "{root}/brick/test/hole", "--out", "{tmp}/p", "--quiet", "--engine", "torch"], setup=_garbage_png_input, expect=OK, after=_listed_and_scored),
    # ----------------------------------------------------------------- export
    Case("export-vae-refused", "export", ["export", "{tmp}/vae"], setup=_model_run("vae"), phrase="cannot export vae"),
    Case("export-anogan-refused", "export", ["export", "{tmp}/anogan"], setup=_model_run("anogan"), phrase="cannot export anogan"),
    Case("export-out-is-a-directory", "export", ["export", "{copy}", "--out", "{tmp}"], phrase="is a directory"),
    Case("export-missing-run", "export", ["export", "{tmp}/gone"], phrase="{tmp}/gone"),
    Case("export-format-unknown", "export", ["export", "{run}", "--format", "tflite"], phrase="tflite"),
    Case("export-quantize-with-out", "export", ["export", "{run}", "--quantize", "int8", "--out", "{tmp}/m.onnx"], phrase="--quantize"),
    # -------------------------------------------------------------- benchmark
    Case("benchmark-protocol-unknown", "benchmark", ["benchmark", "--protocol", "robustness"], phrase="robustness"),
    Case("benchmark-localization-dataset-unknown", "benchmark", ["benchmark", "--dataset", "kitti", "--out", "{tmp}/b"], phrase="kitti"),
    Case("benchmark-localization-fraction", "benchmark", ["benchmark", "--dataset", "magnetic-tile", "--labelled-fraction", "1.5", "--out", "{tmp}/b"], phrase="--labelled-fraction"),
    Case("benchmark-one-class-dataset-unknown", "benchmark", ["benchmark", "--protocol", "one-class", "--dataset", "svhn", "--model", "ae", "--out", "{tmp}/b"], phrase="svhn"),
    Case("benchmark-one-class-class-missing", "benchmark", ["benchmark", "--protocol", "one-class", "--dataset", "digits", "--model", "ae", "--classes", "42", "--out", "{tmp}/b"], phrase="42"),
    Case("benchmark-one-class-classes-text", "benchmark", ["benchmark", "--protocol", "one-class", "--dataset", "digits", "--classes", "cats", "--out", "{tmp}/b"], phrase="cats"),
    Case("benchmark-train-per-class-zero", "benchmark", ["benchmark", "--protocol", "one-class", "--dataset", "digits", "--model", "ae", "--train-per-class", "0", "--out", "{tmp}/b"], phrase="--train-per-class"),
    Case("benchmark-tabular-seeds-zero", "benchmark", ["benchmark", "--protocol", "tabular", "--seeds", "0", "--data-root", "{tmp}", "--out", "{tmp}/b"], phrase="--seeds"),
    Case("benchmark-tabular-models-unknown", "benchmark", ["benchmark", "--protocol", "tabular", "--models", "ae,xgboost", "--data-root", "{tmp}", "--out", "{tmp}/b"], phrase="xgboost"),
    Case("benchmark-tabular-label-fraction", "benchmark", ["benchmark", "--protocol", "tabular", "--label-fraction", "1.5", "--data-root", "{tmp}", "--out", "{tmp}/b"], phrase="--label-fraction"),
    Case("benchmark-calibration-on-mvtec", "benchmark", ["benchmark", "--protocol", "calibration", "--dataset", "mvtec", "--out", "{tmp}/b"], phrase="mvtec"),
    Case("benchmark-serve-without-run", "benchmark", ["benchmark", "--protocol", "serve", "--out", "{tmp}/b"], phrase="--run"),
    # ------------------------------------------------------------------ serve
    Case("serve-threads-zero", "serve", ["serve", "{run}", "--threads", "0"], phrase="--threads"),
    Case("serve-port-text", "serve", ["serve", "{run}", "--port", "http"], phrase="--port"),
    Case("serve-port-too-large", "serve", ["serve", "{run}", "--port", "70000"], phrase="70000"),
    Case("serve-max-body-nan", "serve", ["serve", "{run}", "--max-body-mb", "nan"], phrase="--max-body-mb"),
    Case("serve-max-body-zero", "serve", ["serve", "{run}", "--max-body-mb", "0"], phrase="--max-body-mb must be > 0"),
    Case("serve-keep-overlays-unknown", "serve", ["serve", "{run}", "--keep-overlays", "some"], phrase="some"),
    Case("serve-run-missing", "serve", ["serve", "{tmp}/gone"], phrase="no such run directory: {tmp}/gone"),
    Case("serve-name-with-slash", "serve", ["serve", "a/b={run}"], phrase="a/b"),
    Case("serve-same-name-twice", "serve", ["serve", "m={run}", "m={run}"], phrase="'m'"),
    Case("serve-api-key-file-missing", "serve", ["serve", "{run}", "--api-key-file", "{tmp}/key"], phrase="{tmp}/key"),
    # ------------------------------------------------------------- Python API
    Case("api-unknown-model", "python", call=lambda fx: Detector("isolation_forest").check_params(), error=ConfigError, phrase="isolation_forest"),
    Case("api-image-size-tuple", "python", call=lambda fx: Detector("ae", image_size=(64, 48)).check_params(), error=ConfigError, phrase="image_size"),
    Case("api-epochs-zero", "python", call=lambda fx: Detector("ae", epochs=0).check_params(), error=ConfigError, phrase="epochs"),
    Case("api-unknown-option", "python", call=lambda fx: Detector("vae", widht=8).check_params(), error=ConfigError, phrase="widht"),
    Case("api-fit-nan-images", "python", call=_nan_images, error=DataError, phrase="array[3]"),
    Case("api-fit-int64-images", "python", call=lambda fx: _small("ae").fit(_images(dtype=np.float64).astype(np.int64)), error=DataError, phrase="int64"),
    Case("api-fit-float-above-one", "python", call=_bright_images, error=DataError, phrase="[0, 1]"),
    Case("api-fit-empty-array", "python", call=_fit_empty_array, error=DataError, phrase="empty"),
    Case("api-fit-missing-path", "python", call=_fit_missing_path, error=DataError, phrase="gone.png"),
    Case("api-predict-before-fit", "python", call=_not_fitted, phrase="not fitted"),
    Case("api-table-model-maps", "python", call=_table_maps, error=ConfigError, phrase="map"),
    Case("api-rows-of-another-width", "python", call=_rows_with_other_width, error=DataError, phrase="6"),
    Case("api-y-anomalies-only-ae", "python", call=_fit_with_labels("ae"), error=DataError, phrase="y marks all 12 samples as anomalies"),
    Case("api-y-anomalies-only-patchcore", "python", call=_fit_with_labels("patchcore"), error=DataError, phrase="patchcore needs normal ones"),
    Case("api-y-anomalies-only-ganomaly", "python", call=_fit_with_labels("ganomaly"), error=DataError, phrase="ganomaly needs normal ones"),
    Case("api-y-anomalies-only-rsrae", "python", call=_fit_with_labels("rsrae"), error=DataError, phrase="rsrae needs normal ones"),
    Case("api-y-anomalies-only-cavga", "python", call=_fit_with_labels("cavga"), error=DataError, phrase="cavga needs normal ones"),
    Case("api-y-not-binary", "python", call=lambda fx: _small("esad").fit(_images(), np.arange(12)), error=DataError, phrase="y must hold"),
    Case("api-load-missing-folder", "python", call=_load_missing, error=ModelFileError, phrase="nowhere"),
    Case("api-load-csv-latin1", "python", call=lambda fx: load_csv(fx.tmp / "latin.csv"), setup=_latin1_csv, error=DataError, phrase="latin.csv"),
    Case("api-load-csv-headerless", "python", call=lambda fx: load_csv(fx.tmp / "rows.csv"), setup=_headerless_csv, error=DataError, phrase="rows.csv"),
    Case("api-load-csv-headerless-ok", "python", call=lambda fx: load_csv(fx.tmp / "rows.csv", header=False, label_column="c2"), setup=_headerless_csv, expect=OK, after=_two_features),
    Case("api-uint16-images-ok", "python", call=lambda fx: _small("ae").fit((_images() * 65535).astype(np.uint16)), expect=OK, after=_fitted),
]  # fmt: skip


# ------------------------------------------------------------- round 3: fixtures


def _predicted(*extra: str, run: str = "{run}") -> Callable[[Fx], None]:
    """``{tmp}/p`` written by a predict of the good test images (``extra``: its options)."""

    def build(fx: Fx) -> None:
        argv = ["predict", _fill(run, fx), str(fx.root / "brick" / "test" / "good"), "--out", str(fx.tmp / "p")]
        assert main([*argv, "--quiet", "--engine", "torch", *extra]) == 0

    return build


def _predicted_then(edit: Callable[[Path], None]) -> Callable[[Fx], None]:
    def build(fx: Fx) -> None:
        _predicted()(fx)
        edit(fx.tmp / "p")

    return build


def _not_utf8_scores(out: Path) -> None:
    data = (out / "scores.csv").read_bytes()
    (out / "scores.csv").write_bytes(data.replace(b",", b",\xff", 2))


def _cut_middle_row(out: Path) -> None:
    lines = (out / "scores.csv").read_text().split("\n")
    lines[2] = "half-writ"
    (out / "scores.csv").write_text("\n".join(lines))


def _no_job_record(out: Path) -> None:
    _edit_json(out / "predict.json", lambda d: d.pop("job", None))


def _config(edit: Callable[[dict[str, Any]], None]) -> Callable[[Fx], None]:
    return lambda fx: _edit_json(fx.copy / "model" / "config.json", edit)


def _threshold_text(d: dict[str, Any]) -> None:
    d["threshold"] = "high"


def _image_size_48(d: dict[str, Any]) -> None:
    d["detector"]["image_size"] = 48


def _width_8(d: dict[str, Any]) -> None:
    d["model_config"]["width"] = 8


def _val_scores_text(d: dict[str, Any]) -> None:
    d["val_scores"] = ["low", "high"]


def _text_mat(fx: Fx) -> None:
    (fx.tmp / "hs").mkdir()
    (fx.tmp / "hs" / "scene.mat").write_text("this is not a MATLAB file")


def _scene(fx: Fx, shape: tuple[int, int], anomalous: bool) -> None:
    from scipy.io import savemat

    (fx.tmp / "hs").mkdir()
    gt = np.zeros(shape)
    if anomalous:
        gt.flat[1] = 1
    cube = np.random.default_rng(0).random((*shape, 6))
    savemat(str(fx.tmp / "hs" / "scene.mat"), {"data": cube, "map": gt})


def _undefined_auroc_said(fx: Fx, rc: int) -> None:
    row = json.loads((fx.tmp / "b" / "results.json").read_text())["rows"][0]
    assert row["rx"] is None
    if "no anomalous pixel" not in (row.get("undefined") or {}).get("rx", ""):
        raise _poor("the AUROC is null without a reason")


def _results_db(fx: Fx) -> None:
    import sqlite3

    with sqlite3.connect(fx.copy / "results.db") as db:
        db.execute("create table kept (x integer)")
        db.execute("insert into kept values (1)")


def _results_db_kept(fx: Fx, rc: int) -> None:
    import sqlite3

    with sqlite3.connect(fx.copy / "results.db") as db:
        assert db.execute("select x from kept").fetchall() == [(1,)]


def _thin_images(fx: Fx) -> None:
    from PIL import Image

    (fx.tmp / "in").mkdir()
    rng = np.random.default_rng(0)
    for name, (h, w) in {"thin.png": (3, 200), "one.png": (1, 1)}.items():
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(fx.tmp / "in" / name)


def _both_scored(fx: Fx, rc: int) -> None:
    assert len(_rows(fx.tmp / "p" / "scores.csv")) == 2 and _rows(fx.tmp / "p" / "errors.csv") == []


def _clip_folder(fx: Fx) -> None:
    from reconad.data.video import write_moving_shapes

    shapes = write_moving_shapes(fx.tmp / "shapes", n_train=1, n_test=1, n_frames=8, size=(24, 32))
    shutil.copytree(shapes / "testing" / "frames" / "01", fx.tmp / "clip")


def _gap_in_frames(fx: Fx) -> None:
    from reconad.data.video import write_moving_shapes

    shapes = write_moving_shapes(fx.tmp / "shapes", n_train=1, n_test=1, n_frames=8, size=(24, 32))
    frames = sorted((shapes / "testing" / "frames" / "01").iterdir())
    frames[3].unlink()


def _int8_written(fx: Fx, rc: int) -> None:
    check = json.loads((fx.tmp / "ae" / "export" / "model.int8.json").read_text())["accuracy_check"]
    assert "detection_rate" in check["int8"] and isinstance(check["offered"], bool)


def _trained_ae_run(fx: Fx) -> None:
    assert main(_fill_all(_train(model="ae", out="{tmp}/ae"), fx)) == 0


def _fill_all(argv: list[str], fx: Fx) -> list[str]:
    return [_fill(a, fx) for a in argv]


# ------------------------------------------------------- round 3: Python calls


def _rows_det() -> Detector:
    rows = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    return Detector("ae", **FAST, width=4).fit(rows)


def _frame(columns: str = "abcdef") -> Any:
    pd = pytest.importorskip("pandas")
    rows = np.random.default_rng(0).random((40, len(columns))).astype(np.float32)
    return pd.DataFrame(rows, columns=list(columns))


def _frame_det() -> Detector:
    return Detector("ae", **FAST, width=4).fit(_frame())


def _frame_reordered(fx: Fx) -> Any:
    det, df = _frame_det(), _frame()
    return det.decision_function(df), det.decision_function(df[list("fedcba")])


def _same_scores(fx: Fx, result: Any) -> None:
    np.testing.assert_array_equal(result[0], result[1])


def _pil_images(fx: Fx) -> Any:
    from PIL import Image

    return _small("ae").fit([Image.fromarray((x * 255).astype(np.uint8)) for x in _images()])


def _mixed_sizes(fx: Fx) -> Any:
    return _small("ae").fit([_images(1, 16)[0], _images(1, 24)[0]] * 6)


def _empty_list_scores(fx: Fx) -> Any:
    return _small("ae").fit(_images()).decision_function([])


def _one_row(fx: Fx) -> Any:
    return _rows_det().decision_function(np.zeros(6, np.float32))


def _y_two_columns(fx: Fx) -> Any:
    return _small("esad").fit(_images(), np.zeros((12, 2)))


def _table_val_images(fx: Fx) -> Any:
    rows = np.random.default_rng(0).random((40, 6)).astype(np.float32)
    return Detector("ae", **FAST, width=4).fit(rows, val_data=_images())


def _images_val_table(fx: Fx) -> Any:
    return _small("ae").fit(_images(), val_data=np.zeros((10, 6), np.float32))


def _overlap_without_tiles(fx: Fx) -> Any:
    return Detector("ae", tile_overlap=8).check_params()


def _unknown_option(name: str) -> Callable[[Fx], Any]:
    return lambda fx: Detector(name, nosuch_option=1).check_params()


def _frame_duplicate_names(fx: Fx) -> Any:
    df = _frame("abcdef")
    df.columns = list("abcdea")
    return Detector("ae", **FAST, width=4).fit(df)


def _frame_saved_names(fx: Fx) -> Any:
    _frame_det().save(fx.tmp / "m")
    return Detector.load(fx.tmp / "m").feature_names_in_


def _names_kept(fx: Fx, names: Any) -> None:
    assert names == list("abcdef")


def _overlay_of_thin_image(fx: Fx) -> Any:
    from reconad.visualize import save_overlay

    image = np.random.default_rng(0).random((3, 3, 200)).astype(np.float32)  # (C, H, W): 3 rows of 200
    return save_overlay(fx.tmp / "o.png", image, np.zeros((3, 200)), 0.0, 1.0)


def _overlay_shape(fx: Fx, path: Any) -> None:
    from PIL import Image

    assert np.asarray(Image.open(path)).shape == (3, 404, 3)


def _registered_models() -> list[str]:
    from reconad.models import MODELS

    return sorted(MODELS)


ROUND3: list[Case] = [
    # ------------------------------------------------- every registered model
    *[Case(f"train-{m}-unknown-option", "train", _train("--set", "nosuch_option=1", model=m), phrase="nosuch_option") for m in _registered_models()],
    *[Case(f"api-{m}-unknown-option", "python", call=_unknown_option(m), error=ConfigError, phrase="nosuch_option") for m in _registered_models()],
    # ------------------------------------------------------ train, round 3
    Case("train-tile-overlap-without-tile-size", "train", _train("--tile-overlap", "8"), phrase="tile_overlap (8) needs tile_size"),
    Case("train-overwrite-keeps-results-db", "train", _train("--overwrite", "--seed", "1", out="{copy}"), setup=_results_db, expect=OK, after=_results_db_kept, writes_run=True),
    # ------------------------------------------------------- test, round 3
    Case("test-config-threshold-text", "test", ["test", "{copy}", "--quiet"], setup=_config(_threshold_text), phrase="threshold must be a finite number"),
    Case("test-config-image-size-edited", "test", ["test", "{copy}", "--quiet"], setup=_config(_image_size_48), phrase="config.json: image_size 48"),
    Case("test-config-val-scores-text", "test", ["test", "{copy}", "--quiet"], setup=_config(_val_scores_text), phrase="val_scores"),
    Case("test-tile-overlap-without-tile-size", "test", ["test", "{run}", "--tile-overlap", "4", "--quiet"], phrase="--tile-overlap needs --tile-size"),
    # ---------------------------------------------------- predict, round 3
    Case("predict-resume-another-tiling", "predict", ["predict", "{run}", "{root}/brick/test/good", "--out", "{tmp}/p", "--tile-size", "32", "--engine", "torch", "--resume"], setup=_predicted(), phrase="--resume continues only the job"),
    Case("predict-resume-another-input-list", "predict", ["predict", "{run}", "{root}/brick/test/hole", "--out", "{tmp}/p", "--engine", "torch", "--resume"], setup=_predicted(), phrase="another input list"),
    Case("predict-resume-another-engine", "predict", ["predict", "{run}", "{root}/brick/test/good", "--out", "{tmp}/p", "--engine", "onnx", "--resume"], setup=_predicted(), phrase="another model, engine or tiling"),
    Case("predict-resume-not-utf8", "predict", ["predict", "{run}", "{root}/brick/test/good", "--out", "{tmp}/p", "--engine", "torch", "--resume"], setup=_predicted_then(_not_utf8_scores), phrase="is not UTF-8"),
    Case("predict-resume-damaged-row", "predict", ["predict", "{run}", "{root}/brick/test/good", "--out", "{tmp}/p", "--engine", "torch", "--resume"], setup=_predicted_then(_cut_middle_row), phrase="line 3 is damaged"),
    Case("predict-resume-no-job-record", "predict", ["predict", "{run}", "{root}/brick/test/good", "--out", "{tmp}/p", "--engine", "torch", "--resume"], setup=_predicted_then(_no_job_record), phrase="does not record the job"),
    Case("predict-config-threshold-text", "predict", ["predict", "{copy}", "{root}/brick/test/hole", "--out", "{tmp}/p"], setup=_config(_threshold_text), phrase="config.json: threshold"),
    Case("predict-config-image-size-onnx", "predict", ["predict", "{copy}", "{root}/brick/test/hole", "--out", "{tmp}/p", "--engine", "onnx"], setup=_config(_image_size_48), phrase="config.json: image_size 48"),
    Case("predict-config-image-size-torch", "predict", ["predict", "{copy}", "{root}/brick/test/hole", "--out", "{tmp}/p", "--engine", "torch"], setup=_config(_image_size_48), phrase="config.json: image_size 48"),
    Case("predict-tile-overlap-without-tile-size", "predict", ["predict", "{run}", "{root}/brick/test/hole", "--out", "{tmp}/p", "--tile-overlap", "4"], phrase="--tile-overlap needs --tile-size"),
    Case("predict-thin-and-one-pixel-tiled", "predict", ["predict", "{run}", "{tmp}/in", "--out", "{tmp}/p", "--quiet", "--tile-size", "32", "--engine", "torch"], setup=_thin_images, expect=OK, after=_both_scored),
    Case("predict-video-resume", "predict", ["predict", "{video}", "{tmp}/clip", "--out", "{tmp}/p", "--resume"], setup=_clip_folder, phrase="--resume"),
    Case("predict-video-tile-size", "predict", ["predict", "{video}", "{tmp}/clip", "--out", "{tmp}/p", "--tile-size", "16"], setup=_clip_folder, phrase="--tile-size"),
    Case("predict-video-engine-onnx", "predict", ["predict", "{video}", "{tmp}/clip", "--out", "{tmp}/p", "--engine", "onnx"], setup=_clip_folder, phrase="--engine onnx"),
    Case("predict-video-missing-clip", "predict", ["predict", "{video}", "{tmp}/noclip", "--out", "{tmp}/p"], phrase="{tmp}/noclip"),
    # ----------------------------------------------------------------- watch
    Case("watch-clip-model", "watch", ["watch", "{video}", "{tmp}/clip", "--out", "{tmp}/w"], setup=_clip_folder, phrase="takes a frame model"),
    Case("watch-missing-run", "watch", ["watch", "{tmp}/norun", "{tmp}", "--out", "{tmp}/w"], phrase="{tmp}/norun"),
    Case("watch-poll-zero", "watch", ["watch", "{video}", "{tmp}", "--out", "{tmp}/w", "--poll", "0"], phrase="--poll must be > 0"),
    Case("watch-max-frames-zero", "watch", ["watch", "{video}", "{tmp}", "--out", "{tmp}/w", "--max-frames", "0"], phrase="--max-frames"),
    # ----------------------------------------------------- export, round 3
    Case("export-config-threshold-text", "export", ["export", "{copy}"], setup=_config(_threshold_text), phrase="config.json: threshold"),
    Case("export-config-width-edited", "export", ["export", "{copy}", "--out", "{tmp}/m.onnx"], setup=_config(_width_8), phrase="config.json does not match the tensors"),
    Case("predict-run-json-not-utf8-ok", "predict", ["predict", "{copy}", "{root}/brick/test/hole", "--out", "{tmp}/p", "--quiet"], setup=lambda fx: (fx.copy / "run.json").write_bytes(b"\xff\xfe{"), expect=OK),  # predict needs no data record
    Case("test-run-json-not-utf8", "test", ["test", "{copy}", "--quiet"], setup=lambda fx: (fx.copy / "run.json").write_bytes(b"\xff\xfe{"), phrase="run.json"),
    Case("export-quantize-video-run", "export", ["export", "{video}", "--quantize", "int8"], phrase="cannot export ae"),
    Case("export-int8-autoencoder", "export", ["export", "{tmp}/ae", "--quantize", "int8"], setup=_trained_ae_run, expect=OK, after=_int8_written),
    # -------------------------------------------------- benchmark, round 3
    Case("benchmark-calibration-fpr-two", "benchmark", ["benchmark", "--protocol", "calibration", "--fpr", "2", "--out", "{tmp}/b"], phrase="--fpr must be in (0, 1)"),
    Case("benchmark-calibration-fpr-zero", "benchmark", ["benchmark", "--protocol", "calibration", "--fpr", "0", "--out", "{tmp}/b"], phrase="--fpr must be in (0, 1)"),
    Case("benchmark-video-model-hfr", "benchmark", ["benchmark", "--protocol", "video", "--model", "hfr", "--root", "{tmp}", "--out", "{tmp}/b"], phrase="--model hfr: the video protocol"),
    Case("benchmark-video-model-patchcore-in-list", "benchmark", ["benchmark", "--protocol", "video", "--model", "memae,patchcore", "--root", "{tmp}", "--out", "{tmp}/b"], phrase="--model patchcore"),
    Case("benchmark-hyperspectral-model-hfr", "benchmark", ["benchmark", "--protocol", "hyperspectral", "--model", "hfr", "--root", "{tmp}", "--out", "{tmp}/b"], phrase="--model hfr: the hyperspectral protocol"),
    Case("benchmark-tabular-model-flag", "benchmark", ["benchmark", "--protocol", "tabular", "--model", "hfr", "--data-root", "{tmp}", "--out", "{tmp}/b"], phrase="--model does not apply"),
    Case("benchmark-hyperspectral-text-mat", "benchmark", ["benchmark", "--protocol", "hyperspectral", "--model", "rx", "--root", "{tmp}/hs", "--out", "{tmp}/b", "--quiet"], setup=_text_mat, phrase="scene.mat: not a readable MATLAB file"),
    Case("benchmark-hyperspectral-2x2-scene", "benchmark", ["benchmark", "--protocol", "hyperspectral", "--root", "{tmp}/hs", "--out", "{tmp}/b", "--epochs", "1", "--quiet"], setup=lambda fx: _scene(fx, (2, 2), True), expect=OK),
    Case("benchmark-hyperspectral-no-anomalous-pixel", "benchmark", ["benchmark", "--protocol", "hyperspectral", "--model", "rx", "--root", "{tmp}/hs", "--out", "{tmp}/b", "--quiet"], setup=lambda fx: _scene(fx, (6, 6), False), expect=OK, after=_undefined_auroc_said),
    Case("benchmark-video-missing-frame", "benchmark", ["benchmark", "--protocol", "video", "--root", "{tmp}/shapes", "--out", "{tmp}/b", "--set", "frame_size=[24,32]", "--set", "clip_length=4", "--epochs", "1", "--quiet"], setup=_gap_in_frames, phrase="has no frame numbered"),
    # ------------------------------------------------------ serve, round 3
    Case("serve-config-threshold-text", "serve", ["serve", "{copy}"], setup=_config(_threshold_text), phrase="threshold must be a finite number"),
    Case("serve-config-image-size-edited", "serve", ["serve", "{copy}"], setup=_config(_image_size_48), phrase="image_size 48"),
    # ---------------------------------------------------- weights (no network)
    Case("weights-download-unknown-name", "weights", ["weights", "download", "resnet1000"], phrase="resnet1000"),
    Case("weights-list-empty-cache", "weights", ["weights", "list"], expect=OK),
    # ------------------------------------------------- Python API, round 3
    Case("api-y-two-columns", "python", call=_y_two_columns, error=DataError, phrase="got shape (12, 2)"),
    Case("api-table-with-image-val-data", "python", call=_table_val_images, error=ConfigError, phrase="val_data holds images"),
    Case("api-images-with-table-val-data", "python", call=_images_val_table, error=ConfigError, phrase="val_data holds table rows"),
    Case("api-list-of-pil-images-ok", "python", call=_pil_images, expect=OK, after=_fitted),
    Case("api-list-of-arrays-of-two-sizes", "python", call=_mixed_sizes, error=DataError, phrase="different shapes"),
    Case("api-fit-empty-list", "python", call=lambda fx: _small("ae").fit([]), error=DataError, phrase="the list is empty"),
    Case("api-decision-function-empty-list", "python", call=_empty_list_scores, error=DataError, phrase="the list is empty"),
    Case("api-table-one-row-1d", "python", call=_one_row, error=DataError, phrase="X[None]"),
    Case("api-tile-overlap-without-tile-size", "python", call=_overlap_without_tiles, error=ConfigError, phrase="needs tile_size"),
    Case("api-dataframe-columns-reordered-ok", "python", call=_frame_reordered, expect=OK, after=_same_scores),
    Case("api-dataframe-column-renamed", "python", call=lambda fx: _frame_det().decision_function(_frame().rename(columns={"a": "z"})), error=DataError, phrase="missing a; unknown z"),
    Case("api-dataframe-column-missing", "python", call=lambda fx: _frame_det().decision_function(_frame("abcde")), error=DataError, phrase="missing f"),
    Case("api-dataframe-duplicate-names", "python", call=_frame_duplicate_names, error=DataError, phrase="appear more than once"),
    Case("api-dataframe-names-saved-ok", "python", call=_frame_saved_names, expect=OK, after=_names_kept),
    Case("api-overlay-of-thin-chw-image-ok", "python", call=_overlay_of_thin_image, expect=OK, after=_overlay_shape),
]  # fmt: skip

CASES += ROUND3


# ------------------------------------------------------------------ the test


@pytest.fixture(scope="module")
def tiny_run(single_thread: None, tiny_mvtec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny HFR run, exported: ``--engine auto`` finds its export, so no case writes one."""
    run = train_tiny_run(tiny_mvtec, tmp_path_factory.mktemp("sweep") / "run")
    assert main(["export", str(run)]) == 0
    return run


@pytest.fixture(scope="module")
def video_run(single_thread: None, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """A tiny clip autoencoder saved as a run (``RUN/model``), trained when a case first asks."""
    made: list[Path] = []

    def get() -> Path:
        if not made:
            from reconad.data.video import ClipWindows, load_ucsd_split, write_moving_shapes

            base = tmp_path_factory.mktemp("video")
            shapes = write_moving_shapes(base / "shapes", n_train=1, n_test=1, n_frames=8, size=(24, 32))
            train = ClipWindows(load_ucsd_split(shapes, "training", (24, 32)), length=4, stride=4)
            Detector("ae", width=4, **FAST).fit(train).save(base / "run" / "model")
            made.append(base / "run")
        return made[0]

    return get


@pytest.fixture()
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A serve case that got past its checks would start a server: fail it instead."""
    import uvicorn

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a server was started")

    monkeypatch.setattr(uvicorn, "run", refuse)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse
        return int(exc.code or 0)


def _fill(text: str, fx: Fx) -> str:
    if "{copy}" in text:
        text = text.replace("{copy}", str(fx.copy))
    if "{video}" in text:
        text = text.replace("{video}", str(fx.video))
    return text.format(**fx.names())


def _bad(why: str) -> AssertionError:
    """A BAD outcome: a traceback, a bad input accepted, a wrong result, a run changed."""
    return AssertionError(f"[BAD] {why}")


def _poor(why: str) -> AssertionError:
    """A POOR outcome: refused in one way or another, but not in one clear line naming the input."""
    return AssertionError(f"[POOR] {why}")


def _after(case: Case, fx: Fx, result: Any) -> None:
    """An OK case's check of what it wrote or returned: a failure is a wrong result (BAD),
    unless the check says POOR itself."""
    if case.after is None:
        return
    try:
        case.after(fx, result)
    except AssertionError as exc:
        if str(exc).startswith(("[BAD]", "[POOR]")):
            raise
        raise _bad(f"wrong result: {exc}") from exc
    except Exception as exc:
        raise _bad(f"wrong result: {type(exc).__name__}: {exc}") from exc


def _check_cli(case: Case, fx: Fx, capsys: pytest.CaptureFixture[str]) -> None:
    """Runs the case's command line; failures say BAD or POOR (see ``_bad`` / ``_poor``)."""
    assert case.argv is not None
    argv = [_fill(a, fx) for a in case.argv]
    named = [p for p in (fx.run, fx.tmp / "copy") if any(a == str(p) or a.endswith(f"={p}") for a in argv)]
    watched = [] if case.writes_run else named
    before = {p: _files(p) for p in watched}
    capsys.readouterr()
    try:
        rc = _run_cli(argv)
    except Exception as exc:  # reached the caller of main(): what a user sees as a traceback
        raise _bad(f"{type(exc).__name__} escaped: {exc}") from exc
    captured = capsys.readouterr()
    lines = [line for line in captured.err.strip().splitlines() if ": warning:" not in line]
    if "Traceback" in captured.err + captured.out:
        raise _bad(f"traceback: {captured.err[-500:]}")
    for path, files in before.items():
        if _files(path) != files:
            raise _bad(f"{path} was changed")
    if case.expect == OK:
        if rc != 0:
            raise (_poor if rc == 2 and len(lines) == 1 else _bad)(f"valid input refused (exit {rc}): {captured.err}")
        _after(case, fx, rc)
        return
    if rc == 0:
        raise _bad(f"accepted silently: {captured.out[-300:]}")
    if rc != 2 or len(lines) != 1:
        raise _poor(f"exit {rc}, {len(lines)} lines: {captured.err}")
    if (
        not lines[0].startswith(("reconad: error", f"reconad {argv[0]}: error:"))
        or _fill(case.phrase, fx) not in lines[0]
    ):
        raise _poor(f"the line does not name {_fill(case.phrase, fx)!r}: {lines[0]}")


def _check_call(case: Case, fx: Fx) -> None:
    """Runs the case's Python call; failures say BAD or POOR."""
    assert case.call is not None
    if case.expect == OK:
        try:
            result = case.call(fx)
        except ReconadError as exc:
            raise _poor(f"valid input refused: {exc}") from exc
        except Exception as exc:
            raise _bad(f"{type(exc).__name__}: {exc}") from exc
        _after(case, fx, result)
        return
    try:
        result = case.call(fx)
    except ReconadError as exc:
        message = str(exc)
        if not isinstance(exc, case.error) or "\n" in message or _fill(case.phrase, fx) not in message:
            raise _poor(f"{type(exc).__name__}: {message}") from exc
        return
    except Exception as exc:
        raise _bad(f"{type(exc).__name__} (not a ReconadError): {exc}") from exc
    raise _bad(f"accepted silently, returned {type(result).__name__}")


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_sweep(
    case: Case,
    tiny_run: Path,
    tiny_mvtec: Path,
    video_run: Callable[[], Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_server: None,
) -> None:
    fx = Fx(tmp=tmp_path, root=tiny_mvtec, run=tiny_run, video_run=video_run)
    if case.setup is not None:
        try:
            case.setup(fx)
        except Exception as exc:  # the case's own fixture, not the command under test
            raise AssertionError(f"[SETUP] {type(exc).__name__}: {exc}") from exc
    if case.argv is not None:
        _check_cli(case, fx, capsys)
    else:
        _check_call(case, fx)


def test_the_predict_before_fit_error_is_sklearns_not_fitted_error() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        Detector("ae").predict(_images(2))


def test_the_sweep_covers_every_command_and_registered_model() -> None:
    """With the server's sweep (``test_reliability_sweep_serve.py``), at least 200 cases."""
    from reconad.cli import HANDLERS

    commands = {c.cmd for c in CASES}
    assert set(HANDLERS) | {"python"} <= commands
    for name in _registered_models():
        assert any(name in c.id.split("-") for c in CASES), name
    assert len(CASES) >= 100 and len({c.id for c in CASES}) == len(CASES)
