"""Lint: no function in the package is longer than LIMIT lines unless it says why.

A longer function passes when one of its lines carries a ``# long: <reason>`` comment.
Run from the project root: ``python tools/function_lengths.py [paths...]`` (default
``src/reconad``); exits 1 and lists the offenders when there are any.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LIMIT = 60
MARK = "# long:"


def offenders(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out = []
    for node in ast.walk(ast.parse(text, str(path))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        length = node.end_lineno - start + 1  # type: ignore[operator]
        body = lines[start - 1 : node.end_lineno]
        if length > LIMIT and not any(MARK in line for line in body):
            out.append(
                f"{path}:{node.lineno}: {node.name} is {length} lines (limit {LIMIT}; say why with '{MARK} ...')"
            )
    return out


def main(argv: list[str]) -> int:
    roots = [Path(a) for a in argv] or [Path("src/reconad")]
    found = [o for root in roots for p in sorted(root.rglob("*.py")) for o in offenders(p)]
    print("\n".join(found) if found else "function lengths: all within the limit")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
