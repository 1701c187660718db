"""``reconad predict`` over folders of any size: bounded batches, rows flushed as they are
scored, ``--resume`` after an interruption, and sharding across ``torchrun`` ranks.

Memory does not grow with the number of images: images are read, scored and written one
batch at a time, and each heat map is saved and dropped at once.  ``scores.csv`` gets a
row per scored image, in input order, flushed after every batch; an image that cannot be
read gets a row in ``errors.csv`` (path and reason) instead, and scoring goes on
(``strict=True`` stops at the first one).  Each overlay is written (under a temporary
name, then renamed) before its row, so a row never names a missing overlay.

``resume=True`` keeps the rows already in ``scores.csv`` / ``errors.csv`` (a last line cut
by the interruption is dropped), skips their images and appends the rest: the files end
up identical to those of an uninterrupted run.

Under ``torchrun`` (``WORLD_SIZE`` > 1), rank r scores the r-th contiguous share of the
input list (ranks beyond the number of images score nothing) into
``OUT/parts/scores-r-of-N.csv``; after a barrier rank 0 joins the parts, in rank order
(so in input order), into ``OUT/scores.csv`` and ``OUT/errors.csv``.  The parts stay, so
``--resume`` with the same number of ranks picks up unfinished shards.  Several
machines need ``OUT`` on a shared file system.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from reconad.atomic import atomic_open, write_text
from reconad.errors import DataError, ReconadError
from reconad.jsonfile import write_json
from reconad.predict_job import (
    JOB_KEY,
    check_overlays,
    check_resume,
    complete_rows,
    done_counter,
    job_record,
    kept_rows,
    real_key,
)

if TYPE_CHECKING:  # torch loads where it is used: ``reconad.quick_predict`` runs without it
    from reconad.inference import Pipeline

__all__ = ["StreamResult", "stream_predict", "shard_bounds", "complete_rows"]

SCORE_HEADER = ["path", "score", "p_value", "label"]
ERROR_HEADER = ["path", "reason"]


@dataclass
class StreamResult:
    scores_csv: Path
    errors_csv: Path
    scored: int  # images scored in this call (every rank's, on rank 0 under torchrun)
    failed: int  # unreadable images reported in this call
    skipped: int  # rows kept from an earlier, interrupted call (resume)
    seconds: float
    main_process: bool = True  # False on ranks > 0 (rank 0 reports for all)


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[start, end) of rank's contiguous share of n items (sizes differ by at most one)."""
    return n * rank // world, n * (rank + 1) // world


class _RowFile:
    """A CSV opened for appending (header written when new), flushed on demand."""

    def __init__(self, path: Path, header: list[str], keep: bool) -> None:
        fresh = not keep or not path.exists() or path.stat().st_size == 0
        self.fh = open(path, "w" if fresh else "a", newline="", encoding="utf-8")
        self.writer = csv.writer(self.fh, lineterminator="\n")
        if fresh:
            self.writer.writerow(header)

    def write(self, row: Sequence[Any]) -> None:
        self.writer.writerow(row)

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


def _pending(files: Sequence[Path], done: Counter, offset: int = 0) -> list[tuple[int, Path]]:
    """(global input index, path) of the files not yet in ``done`` (real paths, a multiset:
    repeats count); ``offset``: the index of ``files[0]`` in the whole input list (a torchrun
    shard's start), so outputs named by index never collide across ranks."""
    left = Counter(done)
    out = []
    for i, p in enumerate(files):
        key = real_key(p)
        if left[key] > 0:
            left[key] -= 1
            continue
        out.append((offset + i, p))
    return out


def _batches(items: list[tuple[int, Path]], size: int) -> Iterator[list[tuple[int, Path]]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class _Scoring:
    """What scoring one batch needs: the pipeline and where overlays go."""

    def __init__(self, pipe: Pipeline, overlay_dir: Path, index_width: int, which: str = "all") -> None:
        self.pipe = pipe
        self.overlay_dir, self.width = overlay_dir, index_width
        self.which = which  # which images get an overlay: "all", the "flagged" ones or "none"
        self.vmin, self.vmax = pipe.calibrated.color_range
        # numpy pixels (no PyTorch) unless the engine or the tiler runs PyTorch anyway
        self.arrays = pipe.engine != "torch" and pipe.tiler is None

    def load(self, path: Path) -> Any:
        return self.pipe.spec.load_array(path) if self.arrays else self.pipe.spec.load(path)

    def score(self, images: list[Any]) -> tuple[np.ndarray, list[np.ndarray]]:
        scores, maps = self.pipe.score_images(images)
        if maps is None:
            raise DataError(f"{self.pipe.model_name} gives no anomaly maps, which predict needs")
        return np.asarray(scores, dtype=np.float64), maps

    def overlay(self, index: int, path: Path, image: Any, amap: np.ndarray, flagged: bool) -> None:
        from reconad.visualize import save_overlay

        if self.which == "none" or (self.which == "flagged" and not flagged):
            return
        target = self.overlay_dir / f"{index:0{self.width}d}_{path.stem}.png"
        # under a temporary name, renamed; a fast encoder: predict writes one per image (BENCHMARKS §18)
        save_overlay(target, image, amap, self.vmin, self.vmax)


def _write_batch(
    job: _Scoring, scores_file: _RowFile, good: list[tuple[int, Path, Any]], scores: np.ndarray, maps: list[np.ndarray]
) -> None:
    """Each image's overlay, then its row (so a row never names a missing overlay); flushed."""
    pipe = job.pipe
    flags = pipe.labels(scores)
    for j, ((index, path, img), s, pv, m) in enumerate(zip(good, scores, pipe.p_values(scores), maps)):
        job.overlay(index, path, img, m, flags is not None and bool(flags[j]))
        label = "" if flags is None else int(flags[j])
        scores_file.write([str(path), f"{s:.6f}", f"{pv:.6f}", label])
    scores_file.flush()


def _load_batch(
    job: _Scoring, batch: list[tuple[int, Path]], errors_file: _RowFile, strict: bool
) -> tuple[list[tuple[int, Path, Any]], int]:
    """The readable images of ``batch`` and how many were not (each a row of errors.csv)."""
    good: list[tuple[int, Path, Any]] = []
    failed = 0
    for index, path in batch:
        try:
            good.append((index, path, job.load(path)))
        except DataError as exc:
            if strict:
                raise
            errors_file.write([str(path), str(exc)])
            failed += 1
    errors_file.flush()
    return good, failed


def _score_shard(
    job: _Scoring,
    files: Sequence[Path],
    scores_path: Path,
    errors_path: Path,
    resume: bool,
    strict: bool,
    batch_size: int,
    on_progress: Callable[[int], None],
    offset: int = 0,
    base: str | None = None,
) -> tuple[int, int, int]:
    """Score ``files`` into the two CSVs; (scored, failed, kept from before).  A batch's
    overlays and rows are written by one writer thread while the next batch is read and
    scored (PNG encoding and the engine overlap); rows stay in input order."""
    from concurrent.futures import Future, ThreadPoolExecutor

    from reconad.calibration import finite_scores

    done: Counter = Counter()
    if resume:
        done.update(done_counter(kept_rows(scores_path, SCORE_HEADER, (1, 2)), base))
        done.update(done_counter(kept_rows(errors_path, ERROR_HEADER), base))
    kept = sum(done.values())
    on_progress(kept)
    scores_file = _RowFile(scores_path, SCORE_HEADER, keep=resume)
    errors_file = _RowFile(errors_path, ERROR_HEADER, keep=resume)
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reconad-predict-writer")
    written: Future | None = None
    scored, failed = 0, 0
    try:
        for batch in _batches(_pending(files, done, offset), batch_size):
            good, bad = _load_batch(job, batch, errors_file, strict)
            failed += bad
            if good:
                scores, maps = job.score([img for _, _, img in good])
                scores = finite_scores(
                    scores, [str(path) for _, path, _ in good], " from the model (its input is finite)"
                )
                if written is not None:
                    written.result()  # one batch in flight at most; its error surfaces here
                written = writer.submit(_write_batch, job, scores_file, good, scores, maps)
                scored += len(good)
            on_progress(kept + scored + failed)
        if written is not None:
            written.result()
    finally:
        writer.shutdown(wait=True)  # a batch being written when an error stops the loop is finished
        scores_file.close()
        errors_file.close()
    return scored, failed, kept


def _join(parts: list[Path], target: Path, header: list[str]) -> None:
    """Concatenate the parts' rows under one header into ``target`` (temporary file, renamed)."""
    with atomic_open(target, "w", newline="", encoding="utf-8") as out:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(header)
        for part in parts:
            w.writerows(complete_rows(part))


class _ProgressFiles:
    """Per-rank done counts in small files, so rank 0's bar shows the global count."""

    def __init__(self, folder: Path, rank: int, world: int) -> None:
        self.folder, self.rank, self.world = folder, rank, world

    def _path(self, r: int) -> Path:
        return self.folder / f"progress-{r:05d}-of-{self.world:05d}"

    def write(self, count: int) -> None:
        write_text(self._path(self.rank), str(count))

    def total(self) -> int:
        n = 0
        for r in range(self.world):
            try:
                n += int(self._path(r).read_text() or 0)
            except (OSError, ValueError):
                pass
        return n


def _has_rows(out: Path) -> bool:
    """Whether ``out`` holds rows of an earlier predict (its CSVs or torchrun parts)."""
    names = [out / "scores.csv", out / "errors.csv"]
    if (out / "parts").is_dir():
        names += [p for p in (out / "parts").iterdir() if p.suffix == ".csv"]
    return any(p.is_file() and p.read_bytes().count(b"\n") > 1 for p in names)


_OVERLAY_NAME = re.compile(r"^\d{4,}_.*\.png$")


def clear_outputs(out: Path) -> None:
    """Remove what an earlier predict wrote into ``out`` (its CSVs, shard parts and indexed
    overlays), so stale overlays never sit beside new scores; other files are left alone."""
    for name in ("scores.csv", "errors.csv"):
        (out / name).unlink(missing_ok=True)
    if (out / "parts").is_dir():
        shutil.rmtree(out / "parts")
    for f in out.iterdir():
        if f.is_file() and _OVERLAY_NAME.match(f.name):
            f.unlink()


def _ranks() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless launched by torchrun (``WORLD_SIZE`` > 1, the test of
    ``engine.distributed.launched_by_torchrun``, without importing torch where it is not)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 0, 1
    import torch.distributed as dist

    from reconad.engine import distributed as dist_env

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo")
    return dist_env.rank(), dist_env.world_size()


def _fresh(out: Path, rank: int, world: int) -> None:
    """Rank 0 clears an earlier predict's outputs; every rank waits for it."""
    if rank == 0:
        clear_outputs(out)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def _csv_paths(out: Path, rank: int, world: int) -> tuple[Path, Path]:
    """Where this rank writes its scores and errors: OUT's CSVs, or its own part under torchrun."""
    if world <= 1:
        return out / "scores.csv", out / "errors.csv"
    parts = out / "parts"
    parts.mkdir(exist_ok=True)
    name = f"{rank:05d}-of-{world:05d}.csv"
    return parts / f"scores-{name}", parts / f"errors-{name}"


def stream_predict(
    pipe: Pipeline,
    files: Sequence[Path],
    out: Path,
    resume: bool = False,
    strict: bool = False,
    batch_size: int | None = None,
    overlays: str = "all",
    show_progress: bool = True,
) -> StreamResult:
    """Score ``files`` through ``pipe`` into ``out`` (see the module docstring), ``batch_size``
    images at a time (default the pipeline's); ``OUT/predict.json`` records the pipeline.
    ``overlays``: which images get a heat-map overlay, ``all``, ``flagged`` (those above the
    threshold) or ``none``."""
    from reconad.engine.progress import progress

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    rank, world = _ranks()
    check_overlays(overlays, pipe.threshold)
    record = job_record(pipe.describe(), files, overlays)  # --resume continues only this very job
    base = check_resume(out, record, _has_rows(out)) if resume else record["base"]
    if not resume:  # a fresh call owns its outputs: nothing of an earlier one stays beside them
        _fresh(out, rank, world)
    distributed = world > 1
    start, end = shard_bounds(len(files), rank, world)
    job = _Scoring(pipe, out, max(4, len(str(len(files) - 1))), overlays)
    batch_size = batch_size or pipe.batch_size
    if rank == 0:
        write_json(out / "predict.json", {**pipe.describe(), "inputs": len(files), JOB_KEY: record})
    scores_path, errors_path = _csv_paths(out, rank, world)
    counts = _ProgressFiles(out / "parts", rank, world) if distributed else None
    bar = progress(iter(()), enabled=show_progress and rank == 0, total=len(files), desc="scoring", unit="img")

    def on_progress(n: int) -> None:
        if counts is not None:
            counts.write(n)
        if rank == 0:
            now = counts.total() if counts is not None else n
            bar.update(max(0, now - bar.n))

    try:
        counts_here = _shard_or_failure(
            job, files[start:end], scores_path, errors_path, resume, strict, batch_size, on_progress, start, base
        )
        if distributed:
            counts_here = _merge_shards(out, rank, world, counts_here)
            on_progress(len(files))
        elif isinstance(counts_here, ReconadError):
            raise counts_here
    finally:
        bar.close()
    scored, failed, kept = counts_here
    seconds = time.perf_counter() - t0
    return StreamResult(out / "scores.csv", out / "errors.csv", scored, failed, kept, seconds, rank == 0)


def _shard_or_failure(job: _Scoring, *args: Any) -> tuple[int, int, int] | ReconadError:
    """``_score_shard``'s counts, or the one-line error that stopped it: under torchrun a rank
    that fails still meets the others at the merge, so they stop with one line each instead
    of a collective's traceback when its peer disappears."""
    try:
        return _score_shard(job, *args)
    except ReconadError as exc:
        return exc


def _merge_shards(
    out: Path, rank: int, world: int, counts: tuple[int, int, int] | ReconadError
) -> tuple[int, int, int]:
    """Wait for every rank, join the parts on rank 0; the summed counts (rank 0) or this rank's.
    Where a rank failed, every rank raises: that rank its own error, the others one line."""
    import torch
    import torch.distributed as dist

    failure = counts if isinstance(counts, ReconadError) else None
    mine: tuple[int, int, int] = (0, 0, 0) if isinstance(counts, ReconadError) else counts
    total = torch.tensor([*mine, int(failure is not None)], dtype=torch.int64)
    dist.all_reduce(total)  # also the barrier: every rank has finished its shard
    if failure is not None:
        raise failure
    if int(total[3]):
        raise ReconadError(f"stopped: {int(total[3])} other rank(s) failed (see their error line); nothing joined")
    total = total[:3]
    if rank == 0:
        names = [f"{r:05d}-of-{world:05d}.csv" for r in range(world)]
        _join([out / "parts" / f"scores-{n}" for n in names], out / "scores.csv", SCORE_HEADER)
        _join([out / "parts" / f"errors-{n}" for n in names], out / "errors.csv", ERROR_HEADER)
    dist.barrier()  # nobody leaves before the joined files exist
    if rank == 0:
        scored, failed, kept = (int(v) for v in total)
        return scored, failed, kept
    return mine
