"""The ``benchmarks/`` scripts are thin: their command line is argparse (``parser()``), never
``sys.argv`` read by hand; they import the package's public names, never a private one,
and never a sibling script by bare name (what they share lives in ``reconad.protocols``).
Read with ``ast``; ``--help`` of each is asked in-process (no benchmark runs)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.glob("*.py"))
SIBLINGS = {p.stem for p in SCRIPTS}


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _private(dotted: str) -> bool:
    return any(part.startswith("_") and not part.startswith("__") for part in dotted.split("."))


def test_there_are_scripts():
    assert len(SCRIPTS) > 10


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_no_hand_parsed_sys_argv(path):
    hits = [
        n.lineno
        for n in ast.walk(_tree(path))
        if isinstance(n, ast.Attribute) and n.attr == "argv" and isinstance(n.value, ast.Name) and n.value.id == "sys"
    ]
    hits += [
        n.lineno
        for n in ast.walk(_tree(path))
        if isinstance(n, ast.ImportFrom) and n.module == "sys" and any(a.name == "argv" for a in n.names)
    ]
    assert not hits, f"{path.name} reads sys.argv at line(s) {sorted(set(hits))}: use argparse (a parser() function)"


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_no_bare_sibling_or_private_imports(path):
    wrong = []
    for n in ast.walk(_tree(path)):
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            if n.level:
                wrong.append(f"line {n.lineno}: relative import")
                continue
            names = [n.module or ""] + [f"{n.module}.{a.name}" for a in n.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in SIBLINGS:
                wrong.append(f"line {n.lineno}: sibling script {name.split('.')[0]!r}")
            elif name.startswith("reconad") and _private(name):
                wrong.append(f"line {n.lineno}: private name {name}")
    assert not wrong, f"{path.name}: " + "; ".join(dict.fromkeys(wrong))


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_help_works(path, capsys):
    spec = importlib.util.spec_from_file_location(f"benchmark_script_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # the module only: the benchmark runs under __main__
    assert callable(getattr(module, "parser", None)), f"{path.name} has no parser() function"
    with pytest.raises(SystemExit) as exit_:
        module.parser().parse_args(["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")
