"""Shared by the ``reconad serve`` tests: one tiny trained run per test session, image bytes,
free loopback ports, and servers started in a thread or as a real process.

Everything binds to 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from helpers.runs import SIZE as SIZE  # the tiny run's image size, for the serve tests

_RUNS: dict[str, Path] = {}


def tiny_run(root: Path, base: Path) -> Path:
    """A 64-px HFR (width 32, 1 epoch) on the tiny texture set, trained and exported once per session.

    Tests that change a run directory copy it first (``copy_run``)."""
    if "run" not in _RUNS:
        import torch

        from helpers.runs import train_tiny_run
        from reconad.runs import export_run

        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            out = train_tiny_run(root, base / "serve-run" / "brick")
            export_run(out)
        finally:
            torch.set_num_threads(threads)
        _RUNS["run"] = out
    return _RUNS["run"]


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest)
    return dest


def png_bytes(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format=fmt)
    return buf.getvalue()


def texture_images(root: Path) -> list[Path]:
    """The tiny set's test images (good and defective), sorted."""
    return sorted((root / "brick" / "test").rglob("*.png"))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def server_thread(app: Any, timeout: float = 60.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on a free loopback port; yields the base URL."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        thread.join(30)


def serve_process(args: list[str], env: dict[str, str] | None = None, log: Path | None = None) -> subprocess.Popen:
    """``python -m reconad serve ARGS`` as a real process (stdout and stderr to ``log``)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "reconad", "serve", *args], stdout=out, stderr=subprocess.STDOUT, env=environment
    )


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = 90.0, headers: Any = None) -> None:
    """Poll /readyz until it answers 200 (fails early when the process died)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2.0, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout} s")
