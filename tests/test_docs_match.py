"""README matches the code: every command-line flag, every registered model and every
package folder of ``src/reconad`` (model folders included) is named in it."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from reconad.cli import build_parser
from reconad.models import MODELS

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
    assert {"reconad train", "reconad predict", "reconad serve", "reconad benchmark"} <= commands


@pytest.mark.parametrize(("command", "flag"), FLAGS, ids=[f"{c}{f}".replace(" ", "-") for c, f in FLAGS])
def test_every_flag_is_documented(command, flag):
    assert re.search(re.escape(flag) + r"(?![\w-])", README), f"README does not mention {command} {flag}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registered_model_has_a_row_in_the_models_table(name):
    assert f"| `{name}`" in _section("Models"), f"README's Models table has no row for {name}"


def _package_folders() -> list[str]:
    src = ROOT / "src" / "reconad"
    folders = [p for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    models = [p for p in (src / "models").iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    return sorted([f"{p.name}/" for p in folders] + [f"{p.name}/" for p in models])


@pytest.mark.parametrize("folder", _package_folders())
def test_the_layout_names_every_package_folder(folder):
    assert folder in _section("Layout"), f"README's Layout section does not name {folder}"
