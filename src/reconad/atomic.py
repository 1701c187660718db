"""Atomic writes: a kill at any moment leaves the old file (or directory) or the new one, never a torn one.

Every file reconad writes goes through here (JSON through ``reconad.jsonfile``, which uses
``write_text``): the content is written to a temporary sibling in the same directory (same
file system, so the rename is atomic) and renamed over the target with ``os.replace``.
The temporary name starts with a dot and ends in ``.tmp``, and is unique per writer, so two
processes writing the same file never write into each other's temporary file; a kill
leaves at most such a hidden ``.tmp`` file behind, never a half-written target.  Writers
that infer a format from the file name (PIL, matplotlib) must be given the format.

Data is not fsync'ed: this protects against a killed process, not a lost power supply.

``replace_dir`` puts a finished directory in place of another one: on Linux with one
atomic exchange (``renameat2(RENAME_EXCHANGE)``), elsewhere by two renames (a kill between
them leaves the old directory under a ``.old`` sibling name and no target).
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_open", "atomic_path", "replace_dir", "temp_sibling", "write_bytes", "write_text"]


def temp_sibling(path: str | os.PathLike[str], suffix: str = ".tmp") -> Path:
    """A fresh hidden name beside ``path`` (``.NAME.<pid>-<random>.tmp``), not created."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{suffix}")


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path to write ``path``'s new content to (the caller creates the file);
    renamed over ``path`` when the block ends without an error, removed otherwise."""
    target = Path(path)
    tmp = temp_sibling(target)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {target}")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` on a temporary sibling, renamed over ``path`` once closed without an error."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes a new file; mode {mode!r} does not")
    with atomic_path(path) as tmp, open(tmp, mode.replace("w", "x"), **kwargs) as fh:
        yield fh


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return Path(path)


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux / an old C library
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (38, 22, 95):  # ENOSYS, EINVAL, EOPNOTSUPP: the file system cannot exchange
        return False
    raise OSError(err, f"cannot replace {b} with {a}: {os.strerror(err)}")


def replace_dir(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Put the finished directory ``new`` where ``target`` is (removing the old one), so a
    reader sees the old directory or the new one; ``new`` must be on the same file system."""
    new, target = Path(new), Path(target)
    if not target.exists():
        os.replace(new, target)
        return target
    if _exchange(new, target):
        shutil.rmtree(new)  # now the old directory
        return target
    old = temp_sibling(target, ".old")
    os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old)
    return target
