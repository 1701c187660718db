"""``reconad benchmark <protocol>``: sub-commands generated from the settings classes, checked
before any data is read, refusals instead of rewrites, and the old ``--protocol X`` spelling
mapped onto them with one deprecation line."""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from reconad.cli import build_parser, main
from reconad.cli_benchmark import legacy_argv, settings_from_args
from reconad.protocols import PROTOCOLS, run_protocol
from reconad.protocols.settings import flag_name


def _sub_commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    bench = top.choices["benchmark"]
    return next(a for a in bench._actions if isinstance(a, argparse._SubParsersAction)).choices


def _settings(argv: list[str]):
    args = build_parser().parse_args(argv)
    return settings_from_args(args, command="reconad")


# ------------------------------------------------------------------ generated from the settings


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_each_flag_is_a_settings_field_with_its_doc_as_help(protocol):
    cls = PROTOCOLS[protocol][1]
    actions = {s: a for a in _sub_commands()[protocol]._actions for s in a.option_strings}
    for f in cls.flag_fields():
        name = ("--no-" + f.name.replace("_", "-")) if f.default is True else flag_name(f.name)
        assert name in actions, f"{protocol}: {name} missing"
        action = actions[name]
        assert action.dest == f.name and action.help.startswith(f.metadata["doc"]), (name, action.help)
        if f.metadata["choices"] and action.choices is not None:
            assert tuple(action.choices) == f.metadata["choices"]
    own = {a.dest for a in actions.values()} - {"help", "quiet", "epochs", "seed", "preset", "set"}
    assert own <= {f.name for f in cls.flag_fields()}  # no flag that is not a field


def test_help_lists_the_field_docs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", "video", "--help"])
    assert exit_.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--clip-length CLIP_LENGTH frames per clip (default 16)" in text
    assert (
        "--frame-size H,W working resolution H,W (default 64,96; motion_knn: 256,384; --preset paper: 256,256)" in text
    )


def test_one_class_dataset_choices_are_the_data_modules_sets():
    from reconad.data.class_datasets import ONE_CLASS_SETS
    from reconad.protocols.settings import ONE_CLASS_DATASETS

    assert ONE_CLASS_DATASETS == tuple(ONE_CLASS_SETS)


def test_given_flags_fill_the_settings_and_the_rest_keep_the_dataclass_defaults():
    s = _settings(["benchmark", "calibration", "--fpr", "0.1,0.2", "--n-train", "40", "--epochs", "2", "--quiet"])
    assert s.fpr == [0.1, 0.2] and s.n_train == [40] and s.methods == ["split", "holdout", "cross-fit"]
    assert s.options == {"progress": False, "seed": 0, "epochs": 2} and s.echo is False
    assert s == dataclasses.replace(
        type(s)(), fpr=[0.1, 0.2], n_train=[40], options=s.options, echo=False, command="reconad"
    )


# ------------------------------------------------------------------ checked before any data is read


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["one-class", "--dataset", "cifar10", "--root", "{data}", "--seeds", "0"], "--seeds"),
        (["one-class", "--dataset", "digits", "--model", "ae", "--labelled-ratio", "1.5"], "--labelled-ratio"),
        (["calibration", "--dataset", "magnetic-tile", "--root", "{data}", "--fpr", "0.05,2"], "--fpr"),
        (["video", "--root", "{data}", "--clip-length", "1"], "--clip-length"),
        (["video", "--root", "{data}", "--frame-size", "64"], "--frame-size"),
        (["tabular", "--data-root", "{data}", "--label-fraction", "1.5"], "--label-fraction"),
        (["kddcup99", "--data-root", "{data}", "--threads", "0"], "--threads"),
        (["localization", "--root", "{data}", "--labelled-fraction", "1"], "--labelled-fraction"),
        (["hyperspectral", "--root", "{data}", "--threads", "0"], "--threads"),
        (["serve", "--run", "{data}", "--clients", "4,0"], "--clients"),
        (["speed", "--n-train", "0"], "--n-train"),
    ],
)
def test_a_bad_value_fails_naming_its_flag_before_the_data_is_read(tmp_path, capsys, monkeypatch, argv, flag):
    data = tmp_path / "data-never-read"  # does not exist: reading it would fail naming this path instead
    from reconad.protocols import one_class

    monkeypatch.setattr(one_class, "load_one_class_set", lambda *a, **k: pytest.fail("data read"))
    argv = [a.replace("{data}", str(data)) for a in argv]
    assert main(["benchmark", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reconad: error: ") and flag in err and "\n" not in err, err
    assert str(data) not in err and not (tmp_path / "o").exists() and not data.exists()


@pytest.mark.parametrize(
    "argv, says",
    [
        (["localization", "--root", "{data}", "--set", "score=median"], "model hfr: unknown score 'median'"),
        (["localization", "--root", "{data}", "--model", "ae,vae", "--set", "latent_dim=0"], "model ae: latent_dim"),
        (["speed", "--set", "topk_ratio=2"], "model hfr: topk_ratio must be in (0, 1]"),
        (["calibration", "--root", "{data}", "--epochs", "0"], "model hfr: epochs must be >= 1"),
        (["one-class", "--dataset", "digits", "--model", "ae", "--set", "latent_dim=0"], "model ae: latent_dim"),
        (["one-class", "--dataset", "digits", "--model", "ae", "--set", "image_size=8"], "image_size"),
        (["video", "--root", "{data}", "--set", "latent_dim=0"], "model memae: latent_dim"),
        (["hyperspectral", "--root", "{data}", "--set", "hadgan.bogus=1"], "model hadgan: unknown option(s)"),
        (["tabular", "--data-root", "{data}", "--models", "ae", "--set", 'lr="x"'], "model ae: lr must be a number"),
    ],
)
def test_a_bad_model_option_fails_in_one_line_before_the_data_is_read(tmp_path, capsys, monkeypatch, argv, says):
    """A model option the Detector would refuse at fit is refused when the settings are made,
    naming the model and the option; no loader runs, no output folder is made."""
    import reconad.data
    from reconad.data import textures
    from reconad.protocols import hyperspectral, one_class, tabular

    data = tmp_path / "data-never-read"
    for module, name in (
        (one_class, "load_one_class_set"),
        (tabular, "load_adbench"),
        (hyperspectral, "list_scenes"),
        (reconad.data, "ensure_textures"),
        (textures, "generate_textures"),
    ):
        monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail("data read"))
    argv = [a.replace("{data}", str(data)) for a in argv]
    assert main(["benchmark", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reconad: error: ") and says in err and "\n" not in err, err
    assert not (tmp_path / "o").exists() and not data.exists()


def test_a_value_argparse_cannot_read_is_one_line_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", "one-class", "--dataset", "digits", "--classes", "cats"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reconad benchmark: error: one-class: argument --classes") and "cats" in err
    assert "\n" not in err


# ------------------------------------------------------------------ refusals, never rewrites


@pytest.mark.parametrize(
    "argv, allowed",
    [
        (["video", "--root", "{tmp}", "--model", "hfr"], "ae, memae"),
        (["hyperspectral", "--root", "{tmp}", "--model", "hfr"], "hadgan"),
        (["speed", "--model", "rx"], "hfr"),
        (["one-class", "--dataset", "digits", "--model", "ae,vae"], "one model"),
    ],
)
def test_a_model_the_protocol_cannot_run_is_refused_naming_the_flag(tmp_path, capsys, argv, allowed):
    """Refused in one line naming --model and what the protocol runs (never another model in its place)."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(["benchmark", *argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("reconad: error: --model") and allowed in err and "\n" not in err, err
    assert not (tmp_path / "o").exists()


def test_set_is_for_model_options_only(tmp_path, capsys):
    argv = ["benchmark", "video", "--root", str(tmp_path), "--set", "clip_length=4", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "--set clip_length" in err and "give --clip-length" in err and "\n" not in err


def test_settings_are_frozen():
    s = PROTOCOLS["speed"][1]()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.model = "ae"  # type: ignore[misc]


# ------------------------------------------------------------------ the old spelling


@pytest.mark.parametrize(
    "old, new",
    [
        (
            ["--protocol", "one-class", "--dataset", "digits", "--model", "ae", "--seeds", "2", "--seed", "3"],
            ["one-class", "--dataset", "digits", "--model", "ae", "--seeds", "2", "--seed", "3"],
        ),
        (
            ["--dataset", "textures", "--categories", "brick"],
            ["localization", "--dataset", "textures", "--categories", "brick"],
        ),
        (
            ["--protocol", "calibration", "--fpr", "0.1", "--n-train", "40"],
            ["calibration", "--fpr", "0.1", "--n-train", "40"],
        ),
        (
            ["--protocol", "tabular", "--root", "d", "--seeds", "2", "--set", "threads=2", "--set", "ae.epochs=3"],
            ["tabular", "--data-root", "d", "--seeds", "2", "--threads", "2", "--set", "ae.epochs=3"],
        ),
        (
            ["--protocol", "video", "--root", "r", "--set", "frame_size=[24,32]", "--set", "clip_length=4"],
            ["video", "--root", "r", "--frame-size", "24,32", "--clip-length", "4"],
        ),
        (
            ["--protocol", "serve", "--run", "r", "--set", "clients=[1,2]", "--set", 'server={"max_batch": 8}'],
            ["serve", "--run", "r", "--clients", "1,2", "--server", '{"max_batch": 8}'],
        ),
        (
            ["--protocol", "hyperspectral", "--root", "r", "--set", "maps=false"],
            ["hyperspectral", "--root", "r", "--no-maps"],
        ),
        (["--protocol", "speed", "--fpr", "0.01"], ["speed", "--set", "fpr=0.01"]),
    ],
)
def test_the_old_spelling_maps_onto_the_sub_command(old, new):
    with pytest.warns(FutureWarning, match="deprecated"):
        mapped = legacy_argv(["benchmark", *old])
    assert _settings(mapped) == _settings(["benchmark", *new])


def test_the_old_spelling_says_so_in_one_line_on_stderr(tmp_path):
    argv = ["benchmark", "--protocol", "calibration", "--fpr", "2", "--out", str(tmp_path / "o")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "reconad", *argv], capture_output=True, text=True, timeout=120, env=env
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 2, proc.stderr
    assert lines[0].startswith("reconad: warning: `reconad benchmark --protocol calibration` is deprecated")
    assert "reconad benchmark calibration" in lines[0]
    assert lines[1] == "reconad: error: --fpr must be in (0, 1), got 2.0"


def test_the_new_spelling_says_nothing_of_a_deprecation(tmp_path, recwarn):
    assert main(["benchmark", "calibration", "--fpr", "2", "--out", str(tmp_path / "o")]) == 2
    assert not [w for w in recwarn if issubclass(w.category, FutureWarning)]


def _scene(root: Path) -> None:
    from scipy.io import savemat

    root.mkdir()
    rng = np.random.default_rng(0)
    cube, gt = rng.random((10, 10, 6)), np.zeros((10, 10))
    cube[2, 3] += 4.0
    gt[2, 3] = 1
    savemat(str(root / "scene.mat"), {"data": cube, "map": gt})


def test_both_spellings_give_the_same_results(tmp_path):
    _scene(tmp_path / "hs")
    rows = {}
    for spelling, head in (("old", ["--protocol", "hyperspectral"]), ("new", ["hyperspectral"])):
        out = tmp_path / spelling
        argv = ["benchmark", *head, "--root", str(tmp_path / "hs"), "--model", "rx", "--out", str(out), "--quiet"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            assert main(argv) == 0
        doc = json.loads((out / "results.json").read_text())
        rows[spelling] = [{k: v for k, v in r.items() if not k.endswith("seconds")} for r in doc["rows"]]
    assert rows["old"] == rows["new"] and rows["new"][0]["rx"] == 1.0


def test_the_runner_leaves_its_settings_as_they_were(tmp_path):
    _scene(tmp_path / "hs")
    settings = PROTOCOLS["hyperspectral"][1](root=str(tmp_path / "hs"), model="rx", out=str(tmp_path / "o"), echo=False)
    before = copy.deepcopy(settings)
    run_protocol("hyperspectral", settings)
    assert settings == before
