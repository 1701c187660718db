"""A run directory's life: a new run never mixes with an old one, and a failure or a kill
never leaves a run that silently describes other data than its model was trained on.

``reconad train --out RUN``:

* a new or empty ``RUN`` (or one whose training failed before its first checkpoint:
  only ``run.json``): trained in place, so a killed training continues with ``--resume``
  from ``RUN/checkpoints``;
* a ``RUN`` that already holds a run (``model/`` or ``checkpoints/``) is
  refused unless ``--resume`` (continue that training in place: the data and model must
  be the ones ``run.json`` records) or ``--overwrite`` (the new run is built in a hidden
  sibling, ``.RUN.overwrite``, and put in place of the old one only once it has succeeded,
  with ``reconad.atomic.replace_dir``; a failed or killed overwrite leaves the old run
  whole, and the next ``--overwrite`` starts the sibling afresh).  ``--overwrite`` replaces
  what training, test, report and export wrote (``RUN_PRODUCTS``) and says so; whatever
  other commands appended (the server's ``results.db``, predictions) is carried over;
* an existing file: refused.

The model directory is written beside its place and swapped in (``save_model``), so
``RUN/model`` is always one whole model, the old or the new.  Under ``torchrun`` every rank
trains, but only rank 0 writes the run (as the engine checkpoints on rank 0 only).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconad.atomic import replace_dir, temp_sibling
from reconad.errors import ConfigError, DataError, ModelFileError
from reconad.inference.run_files import RUN_FILE, read_run_info

if TYPE_CHECKING:
    from reconad.data.spec import DataSpec
    from reconad.detector import Detector

__all__ = [
    "RUN_FILE",
    "holds_run",
    "read_run_info",
    "recorded_spec",
    "run_directory",
    "save_model",
    "write_run_info",
]

#: what makes a directory a run (any one of them): something a new training would lose
RUN_MARKERS = ("model", "checkpoints")
#: what train, test, report and export write into a run: what ``--overwrite`` replaces.
#: Anything else in the run folder (the server's results database, predictions written
#: into it) was appended by other commands and is carried into the new run.
RUN_PRODUCTS = (RUN_FILE, *RUN_MARKERS, "export", "scores.csv", "metrics.json", "heatmaps", "report")


def _writes() -> bool:
    """Whether this process writes the run: always, except on the ranks > 0 of a torchrun."""
    return os.environ.get("RANK", "0") == "0"


def holds_run(path: Path) -> bool:
    """Whether ``path`` holds a run (or an interrupted one's checkpoints): a run.json alone, of a
    training that failed before its first epoch, holds nothing to lose or to resume."""
    return path.is_dir() and any((path / m).exists() for m in RUN_MARKERS)


def recorded_spec(run: Path) -> DataSpec | None:
    """The data ``RUN/run.json`` records (None without a run.json); ModelFileError (one line)
    for a damaged or incomplete one."""
    from reconad.data.spec import DataSpec

    info = read_run_info(run)
    if info is None:
        return None
    try:
        return DataSpec(**info["data"])
    except TypeError as exc:
        raise ModelFileError(f"{run / RUN_FILE}: its 'data' record does not describe a dataset ({exc})") from None


def _check_same_run(out: Path, data: dict[str, Any], model: str) -> None:
    """``--resume`` continues a training: refuse other data or another model than ``run.json`` records."""
    spec = recorded_spec(out)  # a damaged run.json is one line
    if spec is None:
        return
    info = read_run_info(out) or {}
    if info.get("model", model) != model:
        raise ConfigError(
            f"--resume continues {out}'s training of model {info['model']}, not {model}: "
            "give the same --model, or --overwrite to train afresh"
        )
    saved = spec.__dict__
    diff = [f"{k} {saved[k]!r} there, {data[k]!r} now" for k in sorted(data) if k in saved and saved[k] != data[k]]
    if diff:
        raise DataError(
            f"--resume continues {out}'s training on the data its run.json records; these differ: "
            + "; ".join(diff)
            + " (give the same data options, or --overwrite to train afresh)"
        )


@contextmanager
def run_directory(
    out: str | os.PathLike[str], data: dict[str, Any], model: str, resume: bool = False, overwrite: bool = False
) -> Iterator[Path]:
    """The directory to write the run into (see the module docstring); with ``overwrite`` of an
    existing run, a staging sibling that replaces ``out`` when the block ends without an error."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is an existing file, not a run directory")
    if resume and overwrite:
        raise ConfigError("--resume continues a run in place, --overwrite replaces it: give one of them")
    existing = holds_run(out)
    if existing and not (resume or overwrite):
        raise DataError(
            f"{out} already holds a run: give --overwrite to replace it (once the new run has succeeded), "
            "--resume to continue its training, or another --out"
        )
    if existing and resume:
        _check_same_run(out, data, model)
    staging = out.resolve().with_name(f".{out.resolve().name}.overwrite")
    if not _writes():  # a torchrun rank > 0: the same directory as rank 0, which alone writes it
        yield staging if existing and overwrite else out
        return
    if not (existing and overwrite):
        out.mkdir(parents=True, exist_ok=True)
        yield out
        return
    if staging.exists():  # the remains of an overwrite that failed or was killed
        shutil.rmtree(staging)
    _say_what_is_replaced(out)
    staging.mkdir()
    try:
        yield staging
        _carry_appended(out, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_dir(staging, out.resolve())


def appended_entries(run: Path) -> list[Path]:
    """What other commands appended to ``run`` (not in ``RUN_PRODUCTS``, not hidden)."""
    return sorted(p for p in run.iterdir() if p.name not in RUN_PRODUCTS and not p.name.startswith("."))


def _say_what_is_replaced(out: Path) -> None:
    import warnings

    replaced = sorted(p.name for p in out.iterdir() if p.name in RUN_PRODUCTS)
    kept = [p.name for p in appended_entries(out)]
    tail = f"; kept and carried into the new run: {', '.join(kept)}" if kept else ""
    warnings.warn(f"--overwrite replaces {out}'s {', '.join(replaced)} once the new run succeeds{tail}", stacklevel=4)


def _carry_appended(old: Path, new: Path) -> None:
    """Hard-link what other commands appended to the old run (a results database, predictions)
    into the new one before the swap: nothing moves until the swap, so a kill before it leaves
    the old run whole, and a database a server holds open stays the same file."""
    for entry in appended_entries(old):
        target = new / entry.name
        if target.exists():
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
            else:
                _link_or_copy(entry, target)
        except OSError as exc:
            raise DataError(f"--overwrite cannot carry {entry} into the new run ({exc}); move it away first") from None


def _link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    if os.path.islink(src):
        os.symlink(os.readlink(src), dst)
        return
    try:
        os.link(src, dst)
    except OSError:  # a file system without hard links
        shutil.copy2(src, dst)


def save_model(det: Detector, target: Path) -> Path:
    """``det.save`` into a sibling, swapped in for ``target``: ``target`` is one whole model, old or new."""
    if not _writes():
        return target
    tmp = temp_sibling(target, ".new")
    try:
        det.save(tmp)
        replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def write_run_info(run: Path, info: dict[str, Any]) -> None:
    """Write ``RUN/run.json`` (atomically, strict JSON; rank 0 only under torchrun)."""
    from reconad.jsonfile import write_json

    if _writes():
        write_json(run / RUN_FILE, info)
