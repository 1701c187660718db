"""README matches the code: every command-line flag, every registered model and every
package folder of ``src/reconad`` (model folders included) is named in it."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from reconad.cli import build_parser
from reconad.cli_benchmark import MODEL_OPTION_FLAGS
from reconad.models import MODELS
from reconad.protocols import PROTOCOLS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end > 0 else None]


def _flags(parser: argparse.ArgumentParser, prefix: str) -> list[tuple[str, str]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _flags(sub, f"{prefix} {name}".strip())
        found += [(prefix, o) for o in action.option_strings if o.startswith("--") and o != "--help"]
    return found


FLAGS = sorted(set(_flags(build_parser(), "reconad")))


def test_the_parser_has_the_commands_users_know():
    commands = {c for c, _ in FLAGS}
    assert {"reconad train", "reconad predict", "reconad serve"} <= commands
    assert {f"reconad benchmark {p}" for p in PROTOCOLS} <= commands  # one sub-command per protocol


#: (protocol, flag) of every ``reconad benchmark PROTOCOL`` sub-command, generated from its settings class
BENCHMARK_FLAGS = [(c.split()[2], f) for c, f in FLAGS if c.startswith("reconad benchmark ")]


def _protocol_row(protocol: str) -> str:
    rows = [line for line in _section("Command line").splitlines() if line.startswith(f"| `{protocol}` |")]
    assert len(rows) == 1, f"README's benchmark table has no single row for {protocol}"
    return rows[0]


@pytest.mark.parametrize(("protocol", "flag"), BENCHMARK_FLAGS, ids=[f"{p}{f}" for p, f in BENCHMARK_FLAGS])
def test_every_benchmark_flag_is_in_its_protocols_row(protocol, flag):
    """The README's benchmark table lists each sub-command's own flags in that protocol's row
    (the model options, shared by all, are named once below the table)."""
    if flag in MODEL_OPTION_FLAGS or flag == "--quiet":
        assert re.search(re.escape(flag) + r"(?![\w-])", _section("Command line"))
        return
    assert re.search(f"`{re.escape(flag)}`", _protocol_row(protocol)), f"{protocol}'s row does not list {flag}"


@pytest.mark.parametrize(("command", "flag"), FLAGS, ids=[f"{c}{f}".replace(" ", "-") for c, f in FLAGS])
def test_every_flag_is_documented(command, flag):
    assert re.search(re.escape(flag) + r"(?![\w-])", README), f"README does not mention {command} {flag}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_has_a_row_in_the_models_table(name):
    assert f"| `{name}`" in _section("Models"), f"README's Models table has no row for {name}"


SRC = ROOT / "src" / "reconad"


def _package_folders() -> list[str]:
    """Every package folder below ``src/reconad`` (data/kinds/, models/hfr/ ...), by its name."""
    return sorted({f"{p.parent.name}/" for p in SRC.rglob("*/__init__.py")})


def _top_level_modules() -> list[str]:
    return sorted(p.name for p in SRC.glob("*.py") if p.name != "__init__.py")


def _named(name: str, text: str) -> bool:
    """``name`` appears in ``text`` as a whole name (``video.py`` is not named by ``xvideo.py``)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}", text) is not None


def test_the_layout_check_sees_the_tree():
    assert {"kinds/", "gan/", "hfr/", "serve/"} <= set(_package_folders())
    assert {"detector.py", "sklearn_compat.py", "cli_benchmark.py"} <= set(_top_level_modules())
    assert _named("kinds/", "data/  kinds/ the kinds") and not _named("kinds/", "datakinds/")


@pytest.mark.parametrize("folder", _package_folders())
def test_the_layout_names_every_package_folder(folder):
    assert _named(folder, _section("Layout")), f"README's Layout section does not name {folder}"


@pytest.mark.parametrize("module", _top_level_modules())
def test_the_layout_names_every_top_level_module(module):
    assert _named(module, _section("Layout")), f"README's Layout section does not name {module}"


def test_the_models_that_learn_from_labels_are_named_where_the_labels_are_explained():
    """The Detector's docstring and README's Labels paragraph name every model that learns
    from labelled anomalies (as ``reconad.models.label_learners`` lists them), and only those;
    the docstring names every model that takes table rows too."""
    from reconad.detector import Detector
    from reconad.models import label_learners, models_taking

    doc = " ".join((Detector.__doc__ or "").split())
    assert ", ".join(label_learners()) in doc
    assert ", ".join(models_taking("table")) in doc  # the models that take table rows, all of them
    labels = README[README.index("**Labels (`y`).**") :].split("\n\n")[0]
    names = [n.split(" ")[0] for n in label_learners()]
    named = {m for m in MODELS if f"`{m}`" in labels}
    assert named == set(names), f"Labels paragraph names {sorted(named)}, the models that learn from labels: {names}"
