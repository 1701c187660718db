"""Bad settings and bad table files are refused by name: non-finite numbers, booleans
for counts, fractional or non-positive patience, an edited config.json (named), CLI
counts below their minimum, CSV files with a byte-order mark, another encoding or no
header."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from helpers.recon_toys import table_toy
from reconad import Detector
from reconad.backbones import build_backbone
from reconad.cli import main
from reconad.data.table_files import load_csv
from reconad.engine import TrainConfig
from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.models.hfr.config import HFRConfig
from reconad.models.memae import MemAEConfig

pytestmark = pytest.mark.usefixtures("single_thread")
FAST = {"epochs": 1, "batch_size": 32, "progress": False, "patience": None}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"lr": math.nan}, "lr must be a finite number"),
        ({"lr": math.inf}, "lr must be a finite number"),
        ({"min_delta": math.nan}, "min_delta must be a finite number"),
        ({"epochs": True}, "epochs must be an integer"),
        ({"patience": 0}, "patience must be an integer"),
        ({"patience": -2}, "patience must be an integer"),
        ({"patience": 1.5}, "patience must be an integer"),
        ({"grad_clip": math.nan}, "grad_clip must be a finite number"),
    ],
)
def test_train_settings_refuse_non_finite_and_bad_counts(values, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**values)


def test_patience_none_and_positive_are_accepted():
    assert TrainConfig(patience=None).patience is None
    assert TrainConfig(patience=3).patience == 3


def test_model_options_refuse_nan():
    with pytest.raises(ConfigError, match="feature_noise must be a finite number"):
        HFRConfig(feature_noise=math.nan)
    with pytest.raises(ConfigError, match="entropy_weight must be a finite number"):
        MemAEConfig(entropy_weight=math.inf)


def test_an_edited_config_json_is_named_in_the_error(tmp_path):
    train, _, _ = table_toy()
    Detector("ae", **FAST).fit(train[:64]).save(tmp_path / "m")
    cfg_path = tmp_path / "m" / "config.json"
    doc = json.loads(cfg_path.read_text())
    doc["train_config"]["epochs"] = "abc"
    cfg_path.write_text(json.dumps(doc))
    with pytest.raises(ModelFileError, match=r"config\.json: epochs must be an integer"):
        Detector.load(tmp_path / "m")


def test_resnet_without_weights_names_the_cli_option():
    with pytest.raises(ConfigError, match="--backbone-weights"):
        build_backbone("resnet18")


@pytest.mark.parametrize(
    "argv, option",
    [
        (["test", "RUN", "--heatmaps", "-1"], "--heatmaps"),
        (["train", "--out", "RUN", "--epochs", "0"], "--epochs"),
        (["train", "--out", "RUN", "--lr", "nan"], "--lr"),
        (["train", "--out", "RUN", "--fpr", "inf"], "--fpr"),
        (["serve", "--run", "RUN", "--workers", "0"], "--workers"),
    ],
)
def test_cli_numbers_below_their_minimum_are_refused(tmp_path, capsys, argv, option):
    argv = [str(tmp_path / "run") if a == "RUN" else a for a in argv]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert len(err.strip().splitlines()) == 1, err  # no usage block before the error
    assert f"argument {option}" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_csv_with_a_byte_order_mark_keeps_its_first_column_name(tmp_path):
    p = _write(tmp_path / "bom.csv", "a,b,label\n1,2,0\n3,4,1\n", "utf-8-sig")
    d = load_csv(p, label_column="label")
    assert d.feature_names == ["a", "b"]
    np.testing.assert_array_equal(d.y, [0, 1])


def test_csv_in_another_encoding_is_one_line_naming_the_file(tmp_path):
    p = _write(tmp_path / "latin.csv", "température,label\n1,0\n2,1\n", "latin-1")
    with pytest.raises(DataError, match=r"latin\.csv: not utf-8-sig text"):
        load_csv(p)
    assert load_csv(p, encoding="latin-1", label_column="label").feature_names == ["température"]


def test_headerless_csv_is_refused_or_read_with_header_false(tmp_path):
    p = _write(tmp_path / "rows.csv", "1,2,0\n3,4,1\n5,6,0\n")
    with pytest.raises(DataError, match="looks like data, not a header"):
        load_csv(p)
    d = load_csv(p, header=False, label_column="c2")
    assert d.feature_names == ["c0", "c1"] and len(d.y) == 3
    np.testing.assert_array_equal(d.y, [0, 1, 0])


def test_csv_ragged_row_names_its_file_line(tmp_path):
    p = _write(tmp_path / "ragged.csv", "a,b\n1,2\n\n3\n")
    with pytest.raises(DataError, match="line 4 has 1 fields"):
        load_csv(p)
