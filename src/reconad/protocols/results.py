"""The one results writer every benchmark protocol uses.

Each run writes ``results.json`` (everything, machine-readable) and ``results.md`` (for
people) into its output folder.  Both carry the same frame: the protocol, the date,
the exact command, the data it ran on, the machine, the settings, and a block of
published figures that is always labelled *published, not reproduced here*.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from reconad.jsonfile import dumps

__all__ = ["Published", "Results", "emit_row", "machine_info", "markdown_table", "write_results", "atomic_write_text"]


@dataclass
class Published:
    """A figure quoted from a paper: never produced here, shown for comparison."""

    method: str
    source: str
    value: float | None = None
    metric: str = ""
    note: str = ""
    values: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"method": self.method, "source": self.source, "metric": self.metric}
        if self.value is not None:
            d["value"] = self.value
        if self.values:
            d["values"] = dict(self.values)
        if self.note:
            d["note"] = self.note
        return d


@dataclass
class Results:
    """One protocol run: what ran, on what, with what result.

    ``payload`` holds the protocol's own fields (per-class AUROCs, runs, ...) and goes
    into ``results.json`` beside the frame; ``body`` is the protocol's Markdown
    (tables, notes) between the frame's header and its footer.
    """

    protocol: str
    title: str
    data: str
    command: str | None
    settings: dict[str, Any]
    payload: dict[str, Any]
    body: str
    published: list[Published] = field(default_factory=list)
    published_note: str = ""


def machine_info() -> dict[str, Any]:
    """The machine a result was measured on."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4f}"
    return str(v)


def markdown_table(rows: list[dict[str, Any]], keys: list[str]) -> str:
    """A small Markdown table of ``rows`` over ``keys`` (floats with 4 decimals)."""
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k, "")) for k in keys) + " |")
    return "\n".join(lines)


def emit_row(row: dict[str, Any], out: str | os.PathLike[str] | None = None) -> None:
    """A benchmark script's result as it comes: one JSON line printed and, with ``out``,
    appended to that file (its folder made first)."""
    line = json.dumps(row)
    print(line, flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as fh:
            fh.write(line + "\n")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to a temporary sibling, then rename it over ``path`` (reconad.atomic)."""
    from reconad.atomic import write_text

    write_text(path, text)


def _published_block(results: Results) -> list[str]:
    if not results.published:
        return []
    lines = ["## Published, not reproduced here", ""]
    if results.published_note:
        lines += [results.published_note, ""]
    for p in results.published:
        value = f": {p.value:.4f}" if p.value is not None else ""
        values = ", ".join(f"{k} {v:.3f}" for k, v in p.values.items())
        extra = f" ({values})" if values else ""
        metric = f" {p.metric}" if p.metric else ""
        note = f" — {p.note}" if p.note else ""
        lines.append(f"- {p.method}, {p.source}{metric}{value}{extra}{note}")
    return [*lines, ""]


def write_results(out: str | os.PathLike, results: Results) -> dict[str, Any]:
    """Write ``results.json`` and ``results.md`` into ``out``; return the JSON document."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    today = date.today().isoformat()
    machine = machine_info()
    doc = {
        "protocol": results.protocol,
        "date": today,
        "command": results.command,
        "data": results.data,
        "machine": machine,
        "settings": results.settings,
        **results.payload,
        "published": {
            "note": "published figures, quoted from the papers; not reproduced here",
            "rows": [p.to_dict() for p in results.published],
        },
    }
    lines = [f"# {results.title} ({today})", "", f"Data: {results.data}", "", results.body.rstrip(), ""]
    lines += _published_block(results)
    lines += [
        "## How this was measured",
        "",
        f"Command: `{results.command}`" if results.command else "Command: (called from Python)",
        "",
        f"Settings: `{json.dumps(results.settings, default=str)}`",
        "",
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs, {machine['torch_threads']} torch threads, "
        f"torch {machine['torch']}" + (f", GPU {machine['cuda']}" if machine["cuda"] else ", no GPU"),
        "",
    ]
    atomic_write_text(out / "results.json", dumps(doc, indent=2, default=str))  # NaN -> null
    atomic_write_text(out / "results.md", "\n".join(lines))
    return doc
