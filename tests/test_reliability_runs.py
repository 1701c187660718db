"""Run directories under failure: a failed re-train never corrupts an existing run, a resume
continues only the training it checkpointed, every file is written whole (a kill at any
moment leaves the old file or the new one), an export from another run is refused, and every
registered model exports with PyTorch's scores or refuses in one line.

Most runs are tiny AEs (16 px, width 4) trained in-process with ``reconad train``; one HFR
run covers its layer option; the kill test runs real ``reconad train`` processes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers.minimal_models import image_models, minimal_detector, table_models
from reconad.cli import main
from reconad.errors import ConfigError

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.slow]

AE = ["--model", "ae", "--image-size", "16", "--set", "width=4", "--set", "patience=null", "--device", "cpu"]


def _train_args(root: Path, out: Path, *extra: str, epochs: int = 2) -> list[str]:
    data = ["--dataset", "mvtec", "--root", str(root), "--category", "brick"]
    return ["train", *data, "--out", str(out), "--epochs", str(epochs), "--quiet", *extra]


def _one_line_error(capsys, rc: int, *phrases: str) -> str:
    """The command failed with exit 2 and one ``reconad: error:`` line holding every phrase."""
    captured = capsys.readouterr()
    assert rc == 2, captured.err
    lines = [line for line in captured.err.strip().splitlines() if not line.startswith("reconad: warning:")]
    assert len(lines) == 1 and lines[0].startswith("reconad: error:"), captured.err
    assert "Traceback" not in captured.err + captured.out
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def _files(run: Path) -> dict[str, bytes]:
    """Every file of a run, by relative path (hidden temporary files included)."""
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ae_run(single_thread, tiny_mvtec, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ae") / "run"
    assert main(_train_args(tiny_mvtec, out, *AE)) == 0
    return out


@pytest.fixture()
def run_copy(ae_run, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(ae_run, copy)
    return copy


@pytest.fixture()
def broken_data(tiny_mvtec, tmp_path) -> Path:
    """The tiny set with one unreadable training image (training fails on it, mid-way)."""
    root = tmp_path / "broken"
    shutil.copytree(tiny_mvtec, root)
    (root / "brick" / "train" / "good" / "zz_broken.png").write_bytes(b"\x00not a PNG" * 20)
    return root


# ------------------------------------------------------------ defect 3: runs


def test_retraining_into_an_existing_run_is_refused_and_changes_nothing(run_copy, broken_data, capsys):
    before = _files(run_copy)
    rc = main(_train_args(broken_data, run_copy, *AE))
    _one_line_error(capsys, rc, "already holds a run", "--overwrite", "--resume")
    assert _files(run_copy) == before


def test_a_failed_overwrite_leaves_the_old_run_whole_and_test_still_uses_its_data(
    run_copy, broken_data, tiny_mvtec, capsys
):
    before = _files(run_copy)
    rc = main(_train_args(broken_data, run_copy, *AE, "--overwrite"))
    _one_line_error(capsys, rc, "cannot read image")
    assert _files(run_copy) == before  # run.json still names the old data, beside the old model
    assert not list(run_copy.parent.glob(".run.*"))  # the staging sibling is gone
    assert main(["test", str(run_copy), "--quiet", "--no-report", "--heatmaps", "0", "--engine", "torch"]) == 0
    assert json.loads((run_copy / "run.json").read_text())["data"]["root"] == str(tiny_mvtec.resolve())


def test_overwrite_replaces_the_run_once_the_new_one_has_succeeded(run_copy, tiny_mvtec, capsys):
    old = _files(run_copy)
    (run_copy / "metrics.json").write_text("{}")  # an output of the old run: it goes with it
    assert main(_train_args(tiny_mvtec, run_copy, *AE, "--overwrite", "--seed", "3", epochs=1)) == 0
    new = _files(run_copy)
    assert "metrics.json" not in new and new["model/model.safetensors"] != old["model/model.safetensors"]
    assert json.loads((run_copy / "model" / "config.json").read_text())["train_config"]["seed"] == 3
    assert json.loads((run_copy / "checkpoints" / "last.json").read_text())["epoch"] == 0
    assert not [p for p in run_copy.parent.iterdir() if p.name.startswith(".")]


def test_out_that_is_a_file_and_resume_with_overwrite_are_one_line(run_copy, tiny_mvtec, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("not a run")
    _one_line_error(capsys, main(_train_args(tiny_mvtec, afile, *AE)), "is an existing file")
    _one_line_error(capsys, main(_train_args(tiny_mvtec, run_copy, *AE, "--resume", "--overwrite")), "give one")
    rc = main(["predict", str(run_copy), str(tiny_mvtec / "brick" / "test" / "hole"), "--out", str(afile)])
    _one_line_error(capsys, rc, str(afile))
    _one_line_error(capsys, main(["export", str(run_copy), "--out", str(tmp_path)]), "is a directory")
    assert afile.read_text() == "not a run"


def _damage(run: Path, case: str) -> None:
    if case == "truncated-checkpoint":
        path = run / "checkpoints" / "last.safetensors"
        path.write_bytes(path.read_bytes()[:100])
    elif case == "checkpoint-of-another-model":  # no run.json: the checkpoint's own record decides
        (run / "run.json").unlink()
        doc = json.loads((run / "checkpoints" / "last.json").read_text())
        _rewrite_checkpoint(run, {**doc, "model": "vae"})
    elif case == "checkpoint-without-its-record":  # an older checkpoint: the tensors are checked
        (run / "run.json").unlink()
        doc = json.loads((run / "checkpoints" / "last.json").read_text())
        _rewrite_checkpoint(run, {k: v for k, v in doc.items() if k != "model_config"})


def _rewrite_checkpoint(run: Path, doc: dict) -> None:
    from safetensors.torch import load_file, save_file

    from reconad.engine.checkpoint import META_KEY

    path = run / "checkpoints" / "last.safetensors"
    save_file(load_file(str(path)), str(path), metadata={META_KEY: json.dumps(doc)})
    (run / "checkpoints" / "last.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "case, extra, phrases",
    [
        ("other-model", ["--model", "vae"], ["of model ae, not vae"]),
        ("other-data", ["--category", "grass"], ["data its run.json records", "category"]),
        ("other-width", ["--set", "width=8"], ["width 4 in the checkpoint, 8 now"]),
        ("other-lr", ["--lr", "0.05"], ["lr 0.001 in the checkpoint, 0.05 now"]),
        ("other-betas", ["--set", "betas=[0.5,0.9]"], ["betas [0.9, 0.999] in the checkpoint, [0.5, 0.9] now"]),
        ("other-schedule", ["--set", "scheduler=cosine"], ["schedule now, none in the checkpoint"]),
        ("other-optimizer", ["--set", "optimizer=sgd"], ["of another kind"]),
        ("truncated-checkpoint", [], ["last.safetensors is not a readable checkpoint"]),
        ("checkpoint-of-another-model", [], ["checkpoint of model vae, not ae"]),
        ("checkpoint-without-its-record", ["--set", "width=8"], ["does not fit this ae", "size mismatch"]),
    ],
)
def test_resume_refuses_what_the_checkpoint_would_override_in_one_line(
    run_copy, tiny_mvtec, capsys, case, extra, phrases
):
    _damage(run_copy, case)
    before = _files(run_copy)
    rc = main(_train_args(tiny_mvtec, run_copy, *AE, "--resume", *extra, epochs=3))
    _one_line_error(capsys, rc, *phrases)
    assert _files(run_copy) == before  # config.json still records the options it was trained with


def test_resume_with_more_epochs_still_works(run_copy, tiny_mvtec):
    assert main(_train_args(tiny_mvtec, run_copy, *AE, "--resume", epochs=3)) == 0
    assert json.loads((run_copy / "checkpoints" / "last.json").read_text())["epoch"] == 2


def test_resume_of_hfr_with_another_layer_set_is_one_line(tiny_mvtec, tmp_path, capsys):
    hfr = ["--image-size", "32", "--set", "width=8", "--set", "bottleneck=8", "--device", "cpu"]
    run = tmp_path / "hfr"
    assert main(_train_args(tiny_mvtec, run, *hfr, epochs=1)) == 0
    rc = main(_train_args(tiny_mvtec, run, *hfr, "--resume", "--set", "layers=[2,3]", epochs=2))
    _one_line_error(capsys, rc, "layers", "[2, 3] now")


@pytest.mark.parametrize(
    "content, phrase",
    [
        ("[1,", "is not valid JSON"),
        ('{"model": "ae"}', "records no 'data'"),
        ('{"data": {"dataset": "mvtec"}}', "does not describe a dataset"),
        ('{"data": {"dataset": "mvtec", "root": "/x", "bogus": 1}}', "does not describe a dataset"),
    ],
)
def test_an_invalid_or_incomplete_run_json_is_one_line(run_copy, tiny_mvtec, capsys, content, phrase):
    (run_copy / "run.json").write_text(content)
    _one_line_error(capsys, main(["test", str(run_copy), "--quiet", "--no-report"]), "run.json", phrase)
    _one_line_error(capsys, main(_train_args(tiny_mvtec, run_copy, *AE, "--resume", epochs=3)), "run.json", phrase)


def test_a_new_run_that_failed_says_so_and_can_be_trained_again(broken_data, tiny_mvtec, tmp_path, capsys):
    run = tmp_path / "run"
    _one_line_error(capsys, main(_train_args(broken_data, run, *AE)), "cannot read image")
    _one_line_error(capsys, main(["test", str(run), "--quiet"]), "no trained model yet", "failed or was interrupted")
    assert main(_train_args(tiny_mvtec, run, *AE, epochs=1)) == 0  # nothing to lose: no flag needed
    assert json.loads((run / "run.json").read_text())["data"]["root"] == str(tiny_mvtec.resolve())


def test_an_interrupted_run_without_a_model_says_to_resume(run_copy, capsys):
    shutil.rmtree(run_copy / "model")
    _one_line_error(capsys, main(["test", str(run_copy), "--quiet"]), "interrupted", "--resume")


def test_a_run_directory_that_cannot_be_written_is_one_line(run_copy, capsys, monkeypatch):
    before = _files(run_copy)
    if os.geteuid() != 0:
        run_copy.chmod(0o555)
    else:  # root writes anywhere: the file system refuses it instead
        import reconad.atomic

        def refuse(path, suffix=".tmp"):
            raise PermissionError(13, "Permission denied", str(path))

        monkeypatch.setattr(reconad.atomic, "temp_sibling", refuse)
    try:
        rc = main(["test", str(run_copy), "--quiet", "--no-report", "--engine", "torch"])
    finally:
        run_copy.chmod(0o755)
    _one_line_error(capsys, rc, "Permission denied", str(run_copy))
    assert _files(run_copy) == before


# ------------------------------------------------------------ atomic writes


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    from reconad.atomic import atomic_open, write_text

    target = write_text(tmp_path / "scores.csv", "old\n")
    with pytest.raises(RuntimeError), atomic_open(target, "w") as fh:
        fh.write("new, half")
        raise RuntimeError("killed mid-way")
    assert target.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["scores.csv"]


def test_replace_dir_puts_the_whole_new_directory_in_place(tmp_path):
    from reconad.atomic import replace_dir

    old, new = tmp_path / "model", tmp_path / "model.new"
    for folder, text in ((old, "old"), (new, "new")):
        folder.mkdir()
        (folder / "a").write_text(text)
        (folder / text).write_text(text)
    replace_dir(new, old)
    assert sorted(p.name for p in old.iterdir()) == ["a", "new"] and (old / "a").read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_checkpoint_whose_json_is_older_than_its_tensors_resumes_from_the_tensors(tmp_path):
    """A kill between the checkpoint's two renames: the tensor file is the commit point."""
    from helpers.recon_training import fit_tiny, tiny_images
    from reconad.models import build_model

    def train(epochs: int, ck: Path | None = None, resume: bool = False):
        torch.manual_seed(0)
        model = build_model("ae", input_shape=[3, 8, 8], width=4, latent_dim=4)
        return model, fit_tiny(model, tiny_images(), epochs, ck, resume)

    ck = tmp_path / "ck"
    train(1, ck)
    older = (ck / "last.json").read_text()  # epoch 0
    train(2, ck, resume=True)
    (ck / "last.json").write_text(older)  # as if killed after the tensors' rename, before the JSON's
    resumed, h_resumed = train(3, ck, resume=True)
    straight, h_straight = train(3)
    assert h_resumed.logs == h_straight.logs
    for (k, a), b in zip(resumed.state_dict().items(), straight.state_dict().values()):
        assert torch.equal(a, b), k


def _state(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "model" / "model.safetensors"))


def test_a_training_killed_at_random_moments_resumes_to_the_uninterrupted_model(tiny_mvtec, tmp_path, capsys):
    """Five kills at seeded random moments of a real ``reconad train``: ``test`` works or refuses
    in one line, ``--resume`` always finishes, and gives the weights of an uninterrupted run."""
    args = _train_args(tiny_mvtec, tmp_path / "straight", *AE, epochs=12)
    assert main(args) == 0
    straight = _state(tmp_path / "straight")
    rng = random.Random(1234)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for trial in range(5):
        run = tmp_path / f"killed{trial}"
        argv = _train_args(tiny_mvtec, run, *AE, epochs=12)
        proc = subprocess.Popen([sys.executable, "-m", "reconad", *argv], env=env, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not run.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 3.0))  # from data loading through the epochs to the saved model
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        capsys.readouterr()
        rc = main(["test", str(run), "--quiet", "--no-report", "--heatmaps", "0", "--engine", "torch"])
        if rc != 0:
            _one_line_error(capsys, rc)
        assert main([*argv, "--resume"]) == 0, capsys.readouterr().err
        assert main(["test", str(run), "--quiet", "--no-report", "--heatmaps", "0", "--engine", "torch"]) == 0
        resumed = _state(run)
        assert resumed.keys() == straight.keys()
        assert all(torch.equal(resumed[k], straight[k]) for k in straight), f"trial {trial}"


# ------------------------------------------------------------ defect 5: foreign exports


@pytest.fixture(scope="module")
def exported_runs(ae_run, tiny_mvtec, tmp_path_factory) -> tuple[Path, Path]:
    """The AE run and another one (another seed), each exported."""
    other = tmp_path_factory.mktemp("other") / "run"
    assert main(_train_args(tiny_mvtec, other, *AE, "--seed", "7")) == 0
    for run in (ae_run, other):
        assert main(["export", str(run)]) == 0
    return ae_run, other


@pytest.mark.parametrize("copied", [("model.onnx",), ("model.onnx", "model.json")])
@pytest.mark.parametrize("engine", ["auto", "onnx"])
def test_an_onnx_export_copied_from_another_run_is_refused(exported_runs, tmp_path, capsys, copied, engine):
    mine, other = exported_runs
    run = tmp_path / "run"
    shutil.copytree(mine, run)
    for name in copied:
        shutil.copy(other / "export" / name, run / "export" / name)
    phrase = "stale or foreign" if "model.json" in copied else "does not match its checksum"
    rc = main(["test", str(run), "--quiet", "--no-report", "--heatmaps", "0", "--engine", engine])
    _one_line_error(capsys, rc, phrase, "reconad export")
    assert main(["test", str(run), "--quiet", "--no-report", "--heatmaps", "0", "--engine", "torch"]) == 0


def test_an_int8_engine_refuses_a_run_without_its_own_int8_export(exported_runs, tmp_path, capsys):
    mine, other = exported_runs
    run = tmp_path / "run"
    shutil.copytree(mine, run)
    for name in ("model.onnx", "model.json"):  # a foreign int8 export is checked the same way
        shutil.copy(other / "export" / name, run / "export" / name.replace("model.", "model.int8."))
    rc = main(["test", str(run), "--quiet", "--no-report", "--engine", "onnx-int8"])
    _one_line_error(capsys, rc, "stale or foreign")


# ------------------------------------------------------------ defect 6: every model exports or refuses


def _assert_one_line_refusal(exc: ConfigError, folder: Path) -> None:
    assert "\n" not in str(exc) and str(exc).startswith("cannot export")
    assert not folder.exists()  # no empty export folder, no temporary file


@pytest.mark.parametrize("name", image_models())
def test_every_image_model_exports_with_torchs_scores_or_refuses_in_one_line(name, tmp_path):
    from reconad.export import OnnxDetector, export_onnx

    det = minimal_detector(name)
    folder = tmp_path / "export"
    try:
        path = export_onnx(det, folder / "model.onnx")
    except ConfigError as exc:
        _assert_one_line_refusal(exc, folder)
        return
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.onnx"]
    size = det.input_size
    images = torch.rand(5, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        s_t, m_t = (t.numpy() for t in det.model_.score_images(images))
    s_o, m_o = OnnxDetector(path)(images)
    np.testing.assert_allclose(s_o, s_t, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(s_t).max())))
    np.testing.assert_allclose(m_o, m_t, rtol=1e-4, atol=1e-4 * max(float(np.ptp(m_t)), 1e-6))


@pytest.mark.parametrize("name", table_models())
def test_every_table_model_refuses_export_in_one_line(name, tmp_path):
    from reconad.export import export_onnx

    det = minimal_detector(name, rows=True)
    with pytest.raises(ConfigError) as info:
        export_onnx(det, tmp_path / "export" / "model.onnx")
    _assert_one_line_refusal(info.value, tmp_path / "export")


def test_an_exporter_failure_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    """The VAE without its blocker: the exporter fails with a graph dump hundreds of lines long."""
    from reconad.export import export_onnx
    from reconad.models.vae import VAE

    det = minimal_detector("vae")
    monkeypatch.setattr(VAE, "export_blocker", lambda self: None)
    with pytest.raises(ConfigError, match="the ONNX exporter failed") as info:
        export_onnx(det, tmp_path / "export" / "model.onnx")
    _assert_one_line_refusal(info.value, tmp_path / "export")


def test_an_export_that_does_not_reproduce_torchs_scores_is_refused(tmp_path, monkeypatch):
    """A graph that bakes in the traced batch size (a Python number from a shape) scores other
    batch sizes wrongly: the check batch catches it."""
    from reconad.export import export_onnx
    from reconad.models.ae import AE

    det = minimal_detector("ae")
    score = AE.score

    def batch_dependent(self, x):
        s, m = score(self, x)
        return s + float(x.shape[0]), m

    monkeypatch.setattr(AE, "score", batch_dependent)
    with pytest.raises(ConfigError, match="does not reproduce PyTorch's scores") as info:
        export_onnx(det, tmp_path / "export" / "model.onnx")
    _assert_one_line_refusal(info.value, tmp_path / "export")


def test_cli_export_of_a_vae_is_one_line_and_test_falls_back_to_torch(tiny_mvtec, tmp_path, capsys):
    run = tmp_path / "vae"
    vae = ["--model", "vae", "--image-size", "16", "--set", "width=4", "--device", "cpu"]
    assert main(_train_args(tiny_mvtec, run, *vae, epochs=1)) == 0
    capsys.readouterr()
    _one_line_error(capsys, main(["export", str(run)]), "cannot export vae")
    assert not (run / "export").exists()
    assert main(["test", str(run), "--quiet", "--no-report", "--heatmaps", "0"]) == 0  # auto: PyTorch
    assert json.loads((run / "metrics.json").read_text())["engine"] == "torch"


def test_auto_scores_with_torch_without_an_export_and_never_writes_one(run_copy, monkeypatch):
    import reconad.inference.onnx_writer
    from reconad.runs import evaluate_run

    shutil.rmtree(run_copy / "export", ignore_errors=True)

    def failing(pipe, path, *a, **kw):
        raise ConfigError("cannot export ae: the ONNX exporter failed (simulated)")

    monkeypatch.setattr(reconad.inference.onnx_writer, "write_onnx", failing)
    metrics = evaluate_run(run_copy)
    assert metrics["engine"] == "torch" and not (run_copy / "export").exists()  # auto exports nothing
    with pytest.raises(ConfigError, match="simulated"):
        evaluate_run(run_copy, engine="onnx")  # asked for by name: the export is attempted, its failure said
