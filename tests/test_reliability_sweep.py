"""A sweep of bad inputs and faults over every command and many models, as one table.

Each case builds its fixture (a broken data root, an edited copy of a run, a stray file),
runs one command line through ``reconad.cli.main`` or one Python call, and expects one
outcome class:

* ``GOOD``: exit code 2 (from Python: a ``ReconadError`` subclass) with exactly one
  stderr line ``reconad: error: ...`` (``reconad <cmd>: error: ...`` for argparse) that
  holds the case's phrase (the file, option or value at fault), no traceback; a run the
  case points at is left byte for byte as it was;
* ``OK``: valid but unusual input that must succeed (exit 0, nothing on stderr but warnings).

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

    @property
    def copy(self) -> Path:
        """A copy of the module's run, made on first use."""
        copy = self.tmp / "copy"
        if not copy.exists():
            shutil.copytree(self.run, copy)
        return copy

    def names(self) -> dict[str, str]:
        return {"tmp": str(self.tmp), "root": str(self.root), "run": str(self.run)}


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
        y = np.r_[np.ones(2), np.zeros(10)]
        return _small(name).fit(_images(12, size), y)

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
    Case("api-unknown-model", "python", call=lambda fx: Detector("isolation_forest"), error=ConfigError, phrase="isolation_forest"),
    Case("api-image-size-tuple", "python", call=lambda fx: Detector("ae", image_size=(64, 48)), error=ConfigError, phrase="image_size"),
    Case("api-epochs-zero", "python", call=lambda fx: Detector("ae", epochs=0), error=ConfigError, phrase="epochs"),
    Case("api-unknown-option", "python", call=lambda fx: Detector("vae", widht=8), error=ConfigError, phrase="widht"),
    Case("api-fit-nan-images", "python", call=_nan_images, error=DataError, phrase="array[3]"),
    Case("api-fit-int64-images", "python", call=lambda fx: _small("ae").fit(_images(dtype=np.float64).astype(np.int64)), error=DataError, phrase="int64"),
    Case("api-fit-float-above-one", "python", call=_bright_images, error=DataError, phrase="[0, 1]"),
    Case("api-fit-empty-array", "python", call=_fit_empty_array, error=DataError, phrase="empty"),
    Case("api-fit-missing-path", "python", call=_fit_missing_path, error=DataError, phrase="gone.png"),
    Case("api-predict-before-fit", "python", call=_not_fitted, phrase="not fitted"),
    Case("api-table-model-maps", "python", call=_table_maps, error=ConfigError, phrase="map"),
    Case("api-rows-of-another-width", "python", call=_rows_with_other_width, error=DataError, phrase="6"),
    Case("api-y-anomalies-ae", "python", call=_fit_with_labels("ae"), error=ConfigError, phrase="model ae trains on normal data only"),
    Case("api-y-anomalies-patchcore", "python", call=_fit_with_labels("patchcore"), error=ConfigError, phrase="model patchcore trains"),
    Case("api-y-anomalies-ganomaly", "python", call=_fit_with_labels("ganomaly"), error=ConfigError, phrase="model ganomaly trains"),
    Case("api-y-anomalies-rsrae", "python", call=_fit_with_labels("rsrae"), error=ConfigError, phrase="model rsrae trains"),
    Case("api-y-anomalies-cavga", "python", call=_fit_with_labels("cavga"), error=ConfigError, phrase="model cavga trains"),
    Case("api-y-not-binary", "python", call=lambda fx: _small("esad").fit(_images(), np.arange(12)), error=DataError, phrase="y must hold"),
    Case("api-load-missing-folder", "python", call=_load_missing, error=ModelFileError, phrase="nowhere"),
    Case("api-load-csv-latin1", "python", call=lambda fx: load_csv(fx.tmp / "latin.csv"), setup=_latin1_csv, error=DataError, phrase="latin.csv"),
    Case("api-load-csv-headerless", "python", call=lambda fx: load_csv(fx.tmp / "rows.csv"), setup=_headerless_csv, error=DataError, phrase="rows.csv"),
    Case("api-load-csv-headerless-ok", "python", call=lambda fx: load_csv(fx.tmp / "rows.csv", header=False, label_column="c2"), setup=_headerless_csv, expect=OK, after=_two_features),
    Case("api-uint16-images-ok", "python", call=lambda fx: _small("ae").fit((_images() * 65535).astype(np.uint16)), expect=OK, after=_fitted),
]  # fmt: skip


# ------------------------------------------------------------------ the test


@pytest.fixture(scope="module")
def tiny_run(single_thread: None, tiny_mvtec: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny HFR run, exported: ``--engine auto`` finds its export, so no case writes one."""
    run = train_tiny_run(tiny_mvtec, tmp_path_factory.mktemp("sweep") / "run")
    assert main(["export", str(run)]) == 0
    return run


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
    return text.format(**fx.names())


def _check_cli(case: Case, fx: Fx, capsys: pytest.CaptureFixture[str]) -> None:
    assert case.argv is not None
    argv = [_fill(a, fx) for a in case.argv]
    watched = [p for p in (fx.run, fx.tmp / "copy") if any(a == str(p) or a.endswith(f"={p}") for a in argv)]
    before = {p: _files(p) for p in watched}
    capsys.readouterr()
    rc = _run_cli(argv)
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert "Traceback" not in captured.err + captured.out
    for path, files in before.items():
        assert _files(path) == files, f"{path} was changed"
    if case.expect == OK:
        assert rc == 0 and not any(": error" in line for line in lines), captured.err
        if case.after is not None:
            case.after(fx, rc)
        return
    assert rc == 2, captured.err
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(("reconad: error:", f"reconad {argv[0]}: error:")), lines[0]
    assert _fill(case.phrase, fx) in lines[0], lines[0]


def _check_call(case: Case, fx: Fx) -> None:
    assert case.call is not None
    if case.expect == OK:
        result = case.call(fx)
        if case.after is not None:
            case.after(fx, result)
        return
    with pytest.raises(case.error) as info:
        case.call(fx)
    message = str(info.value)
    assert isinstance(info.value, ReconadError)
    assert "\n" not in message and _fill(case.phrase, fx) in message, message


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_sweep(
    case: Case,
    tiny_run: Path,
    tiny_mvtec: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    no_server: None,
) -> None:
    fx = Fx(tmp=tmp_path, root=tiny_mvtec, run=tiny_run)
    if case.setup is not None:
        case.setup(fx)
    if case.argv is not None:
        _check_cli(case, fx, capsys)
    else:
        _check_call(case, fx)


def test_the_predict_before_fit_error_is_sklearns_not_fitted_error() -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        Detector("ae").predict(_images(2))


def test_the_sweep_covers_every_command_and_at_least_sixty_cases() -> None:
    commands = {c.cmd for c in CASES}
    assert {"train", "test", "report", "predict", "export", "benchmark", "serve", "python"} <= commands
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
