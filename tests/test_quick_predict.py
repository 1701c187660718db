"""The cold-start path of ``reconad predict``: numpy pre-processing held to ``load_image``'s
pixels, the same scores.csv as the full path, and no PyTorch import at all."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers.runs import train_tiny_run
from reconad.data.image_io import load_image
from reconad.imaging import load_array

pytestmark = pytest.mark.usefixtures("single_thread")


def _write(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """RGB, grayscale, 16-bit, RGBA and palette files of awkward sizes."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rgb = (rng.random((37, 203, 3)) * 255).astype(np.uint8)  # very wide: pad falls back to edge
    files = [
        _write(folder / "rgb.png", (rng.random((300, 200, 3)) * 255).astype(np.uint8)),
        _write(folder / "wide.png", rgb),
        _write(folder / "gray.png", (rng.random((64, 80)) * 255).astype(np.uint8)),
        _write(folder / "gray16.png", (rng.random((90, 70)) * 65535).astype(np.uint16)),
        _write(folder / "rgba.png", (rng.random((50, 50, 4)) * 255).astype(np.uint8)),
        _write(folder / "small.jpg", (rng.random((20, 31, 3)) * 255).astype(np.uint8)),
    ]
    Image.fromarray(rgb).convert("P").save(folder / "palette.png")
    return [*files, folder / "palette.png"]


@pytest.mark.parametrize("mode", ["resize", "pad", "crop", "letterbox"])
@pytest.mark.parametrize("size", [32, 64, (48, 96), None])
def test_numpy_loading_gives_load_image_s_pixels(images, mode, size):
    for path in images:
        expected = load_image(path, size, mode).numpy()
        got = load_array(path, size, mode)
        assert got.shape == expected.shape and got.dtype == np.float32, path.name
        assert np.abs(got - expected).max() <= 2e-5, (path.name, float(np.abs(got - expected).max()))


@pytest.fixture(scope="module")
def run(single_thread, tiny_mvtec, tmp_path_factory):
    from reconad.runs import export_run

    out = train_tiny_run(tiny_mvtec, tmp_path_factory.mktemp("run"))
    export_run(out)
    return out


def _rows(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_the_quick_path_writes_what_the_full_path_writes(run, tiny_mvtec, tmp_path):
    from reconad.quick_predict import quick_predict
    from reconad.runs import predict_run

    folders = [str(tiny_mvtec / "brick" / "test" / d) for d in ("hole", "good", "stain")]
    quick = quick_predict(run, folders, tmp_path / "quick", progress=False)
    assert quick is not None and quick.scored == 6
    predict_run(run, folders, tmp_path / "full", engine="onnx", progress=False)
    a, b = _rows(tmp_path / "quick" / "scores.csv"), _rows(tmp_path / "full" / "scores.csv")
    assert [r["path"] for r in a] == [r["path"] for r in b]
    for x, y in zip(a, b):
        assert float(x["score"]) == pytest.approx(float(y["score"]), abs=1e-5)
        assert x["p_value"] == y["p_value"] and x["label"] == y["label"]
    assert sorted(p.name for p in (tmp_path / "quick").glob("*.png")) == sorted(
        p.name for p in (tmp_path / "full").glob("*.png")
    )


@pytest.mark.slow
def test_predict_on_an_exported_run_never_imports_torch(run, tiny_mvtec, tmp_path):
    code = (
        "import sys; from reconad.cli import main; "
        f"rc = main(['predict', {str(run)!r}, {str(tiny_mvtec / 'brick' / 'test' / 'hole')!r}, "
        f"'--out', {str(tmp_path / 'o')!r}, '--quiet']); "
        "print(rc, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["0", "False"]
    assert len(_rows(tmp_path / "o" / "scores.csv")) == 1


@pytest.mark.slow
def test_the_quick_path_refuses_what_the_full_path_refuses_and_steps_aside_otherwise(run, tmp_path):
    from reconad.errors import ModelFileError
    from reconad.inference import open_run

    assert open_run(run, "auto").engine == "onnx"
    assert open_run(run, "torch").engine == "torch"
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "export")
    assert open_run(copy, "auto").engine == "torch"  # no export: PyTorch, and none is written
    assert not (copy / "export").exists()
    shutil.copytree(run / "export", copy / "export")
    meta_path = copy / "export" / "model.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "weights_sha256": "0" * 64}))
    with pytest.raises(ModelFileError, match="stale or foreign"):
        open_run(copy, "auto")
    weights = copy / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(ModelFileError, match="checksum"):
        open_run(copy, "auto")
