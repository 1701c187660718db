"""``serve``: ``reconad serve`` under load, measured by a client of our own on loopback.

The run is served in a fresh process (``python -m reconad serve RUN``, a free port on
127.0.0.1, a fresh SQLite database in the output folder).  Closed-loop phases: ``c``
concurrent clients, each posting one real test image at a time for ``seconds``
(latency p50 / p95 / p99, images/s, errors, mean batch size).  Then an open-loop flood:
requests arrive at ``flood_factor`` times the images/s the largest phase sustained, for
``flood_seconds``, at most ``flood_clients`` outstanding; it shows 503s instead of
growth, the server's RSS sampled throughout, and the database's row count against the
200s.  Every loop is bounded in time and in count (``max_requests``).

The offline reference is the real ``reconad predict RUN IMAGES --engine onnx`` command on
the same images in the same run: its marginal rate (images / seconds between a run with
8 images and one with ``offline_images``, so process start and model load do not count).
Client and server share the machine's cores: what the client costs is part of the figure.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from reconad.errors import DataError
from reconad.protocols.results import Results, markdown_table, write_results
from reconad.protocols.settings import ServeLoadSettings

__all__ = ["run", "offline_rate", "closed_loop", "open_loop", "RssSampler"]

PHASE_KEYS = ["clients", "seconds", "requests", "ok", "errors", "images_per_second", "p50_ms", "p95_ms", "p99_ms"]


def _test_images(run_dir: Path, count: int) -> list[Path]:
    """Up to ``count`` test images of the data the run was trained on (its test split, else its train split)."""
    from reconad.data.image_io import is_image_file
    from reconad.inference import read_run_info

    info = read_run_info(run_dir) or {}
    data = info.get("data") or {}
    root = Path(str(data.get("root", ""))) / str(data.get("category") or "")
    for split in ("test", "train"):
        found = sorted(p for p in (root / split).rglob("*") if p.is_file() and is_image_file(p))
        if found:
            return found[:count]
    raise DataError(f"{run_dir}: no test or train images found under {root} (run.json names the data)")


def _proc_kib(pid: int, field: str) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return 0.0


def _family(pid: int) -> list[int]:
    """``pid`` and its children (uvicorn's worker processes)."""
    kids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(k) for k in (task / "children").read_text().split()]
        except OSError:
            pass
    return [pid, *kids]


class RssSampler:
    """Samples the resident memory of a process and its children every ``interval`` seconds."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, float]] = []  # (monotonic time, MiB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append((time.monotonic(), sum(_proc_kib(p, "VmRSS") for p in _family(self.pid)) / 1024.0))

    def peak_mib(self) -> float:
        """Peak RSS (VmHWM) summed over the server's processes."""
        return sum(_proc_kib(p, "VmHWM") for p in _family(self.pid)) / 1024.0

    def between(self, t0: float, t1: float) -> list[float]:
        return [m for t, m in self.samples if t0 <= t <= t1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


# ------------------------------------------------------------------ offline reference


def _predict_seconds(run_dir: Path, files: list[Path], engine: str, env: dict[str, str]) -> float:
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, "-m", "reconad", "predict", str(run_dir), *map(str, files), "--out", out]
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--engine", engine, "--quiet"], check=True, capture_output=True, env=env, timeout=1800)
        return time.perf_counter() - t0


def offline_rate(run_dir: Path, images: list[Path], n: int, engine: str = "onnx") -> dict[str, Any]:
    """Marginal images/s of ``reconad predict --engine ENGINE`` over ``n`` copies of ``images``."""
    env = {**os.environ}
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(max(n, 16)):
            dest = Path(tmp) / f"{i:05d}{images[i % len(images)].suffix}"
            shutil.copyfile(images[i % len(images)], dest)
            files.append(dest)
        if engine != "torch" and not (run_dir / "export" / "model.onnx").exists():  # exporting is not timed
            cmd = [sys.executable, "-m", "reconad", "export", str(run_dir)]
            subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=1800)
        small = _predict_seconds(run_dir, files[:8], engine, env)
        large = _predict_seconds(run_dir, files, engine, env)
    rate = (len(files) - 8) / max(large - small, 1e-6)
    return {
        "command": f"reconad predict RUN <{len(files)} images> --out DIR --engine {engine}",
        "images": len(files),
        "seconds_all": large,
        "seconds_8": small,
        "images_per_second": rate,
        "images_per_second_whole_command": len(files) / large,
    }


# ------------------------------------------------------------------ the clients


def _summary(latencies: list[float], codes: list[int], batches: list[int], seconds: float) -> dict[str, Any]:
    ok = np.asarray([lat for lat, c in zip(latencies, codes) if c == 200], dtype=np.float64) * 1000.0
    pct = lambda q: float(np.percentile(ok, q)) if ok.size else float("nan")
    return {
        "requests": len(codes),
        "ok": int(ok.size),
        "errors": sum(c != 200 for c in codes),
        "status_counts": {str(c): codes.count(c) for c in sorted(set(codes))},
        "images_per_second": ok.size / max(seconds, 1e-9),
        "p50_ms": pct(50),
        "p95_ms": pct(95),
        "p99_ms": pct(99),
        "mean_batch_size": float(np.mean(batches)) if batches else float("nan"),
    }


# Idle connections are dropped by the client before uvicorn's 5 s keep-alive timeout closes
# them: reusing one at the moment the server closes it is a client-side ReadError, not a
# server failure.
KEEPALIVE_S = 2.0


async def _post(client: Any, model: str, name: str, body: bytes, transport: dict[str, int]) -> tuple[int, int]:
    """(status, batch size) of one single-image request; status 0 for a transport error,
    counted in ``transport`` by exception name."""
    import httpx

    try:
        r = await client.post(f"/v1/models/{model}/score", files=[("images", (name, body, "image/png"))])
    except httpx.HTTPError as exc:
        transport[type(exc).__name__] = transport.get(type(exc).__name__, 0) + 1
        return 0, 0
    batch = int(r.json()["results"][0]["batch_size"]) if r.status_code == 200 else 0
    return r.status_code, batch


async def closed_loop(
    url: str, model: str, bodies: list[bytes], clients: int, seconds: float, max_requests: int, tag: str
) -> dict[str, Any]:
    """``clients`` loops, each posting one image and waiting for the answer, for ``seconds``."""
    import httpx

    latencies: list[float] = []
    codes: list[int] = []
    batches: list[int] = []
    transport: dict[str, int] = {}  # transport errors by exception name
    start = time.perf_counter()
    deadline = start + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=KEEPALIVE_S)

    async def one(client: Any, k: int) -> None:
        i = k
        while time.perf_counter() < deadline and len(codes) < max_requests:
            t = time.perf_counter()
            code, batch = await _post(client, model, f"{tag}{i:07d}.png", bodies[i % len(bodies)], transport)
            latencies.append(time.perf_counter() - t)
            codes.append(code)
            if batch:
                batches.append(batch)
            i += clients

    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        await asyncio.gather(*[one(client, k) for k in range(clients)])
    summary = _summary(latencies, codes, batches, time.perf_counter() - start)
    return {"clients": clients, "seconds": seconds, **summary, "transport_errors": transport}


async def open_loop(
    url: str,
    model: str,
    bodies: list[bytes],
    rate: float,
    seconds: float,
    outstanding: int,
    max_requests: int,
    tag: str,
) -> dict[str, Any]:
    """Requests arriving at ``rate`` per second for ``seconds`` whatever the answers (a flood)."""
    import httpx

    latencies: list[float] = []
    codes: list[int] = []
    batches: list[int] = []
    transport: dict[str, int] = {}  # transport errors by exception name
    skipped = 0
    pending: set[asyncio.Task] = set()
    limits = httpx.Limits(
        max_connections=outstanding, max_keepalive_connections=outstanding, keepalive_expiry=KEEPALIVE_S
    )

    async def one(client: Any, i: int) -> None:
        t = time.perf_counter()
        code, batch = await _post(client, model, f"{tag}{i:07d}.png", bodies[i % len(bodies)], transport)
        latencies.append(time.perf_counter() - t)
        codes.append(code)
        if batch:
            batches.append(batch)

    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for i in range(min(int(rate * seconds), max_requests)):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            if len(pending) >= outstanding:
                skipped += 1  # the client's own bound: never more than ``outstanding`` in flight
                continue
            task = asyncio.ensure_future(one(client, i))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
    out = _summary(latencies, codes, batches, time.perf_counter() - start)
    return {
        "target_rate": rate,
        "seconds": seconds,
        "not_sent_client_bound": skipped,
        **out,
        "transport_errors": transport,
    }


# ------------------------------------------------------------------ the server


def _start_server(s: ServeLoadSettings, db: Path, port: int, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "reconad", "serve", str(s.run), "--port", str(port), "--db", f"sqlite:///{db}"]
    cmd += ["--engine", s.engine, "--workers", str(s.workers), "--log-level", "warning"]
    for key, value in s.server.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    with open(log, "wb") as fh:  # the child keeps its own copy of the handle
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)


def _wait_ready(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DataError(f"the server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise DataError(f"the server was not ready after {timeout:.0f} s")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _flood_memory(sampler: RssSampler, t0: float, t1: float) -> dict[str, Any]:
    """RSS over the flood: the first and last tenth's medians, the extremes, and the change."""
    window = sampler.between(t0, t1)
    if len(window) < 4:
        return {"rss_samples": len(window)}
    tenth = max(1, len(window) // 10)
    first, last = float(np.median(window[:tenth])), float(np.median(window[-tenth:]))
    return {
        "rss_samples": len(window),
        "rss_first_mib": first,
        "rss_last_mib": last,
        "rss_min_mib": min(window),
        "rss_max_mib": max(window),
        "rss_change": last / first - 1.0,
    }


def _measure(s: ServeLoadSettings, url: str, model: str, bodies: list[bytes], sampler: RssSampler) -> dict[str, Any]:
    """The closed-loop phases, then the flood at ``flood_factor`` times the last phase's rate."""
    phases = []
    for c in s.clients:
        phases.append(asyncio.run(closed_loop(url, model, bodies, c, s.seconds, s.max_requests, f"c{c}-")))
        phases[-1]["peak_rss_mib"] = sampler.peak_mib()
        if s.echo:
            print(markdown_table([phases[-1]], PHASE_KEYS).splitlines()[-1], flush=True)
    sustainable = max(phases[-1]["images_per_second"], 1.0)
    t0 = time.monotonic()
    flood = asyncio.run(
        open_loop(
            url, model, bodies, s.flood_factor * sustainable, s.flood_seconds, s.flood_clients, s.max_requests, "flood-"
        )
    )
    flood.update(_flood_memory(sampler, t0, time.monotonic()), sustainable_rate=sustainable)
    return {"phases": phases, "flood": flood}


def _checks(doc: dict[str, Any], offline: dict[str, Any], s: ServeLoadSettings) -> dict[str, Any]:
    """The issue's targets, each true or false (figures beside them in the payload)."""
    top, flood = doc["phases"][-1], doc["flood"]
    ratio = top["images_per_second"] / max(offline["images_per_second"], 1e-9)
    change = flood.get("rss_change")
    return {
        "largest_phase_clients": top["clients"],
        "largest_phase_zero_errors": top["errors"] == 0,
        "throughput_ratio_to_offline": ratio,
        "throughput_at_least_0.8_offline": ratio >= 0.8,
        "throughput_at_least_0.9_offline": ratio >= 0.9,
        "peak_rss_mib": max(p["peak_rss_mib"] for p in doc["phases"]),
        "peak_rss_within_1.5_gib": max(p["peak_rss_mib"] for p in doc["phases"]) <= 1.5 * 1024,
        "flood_only_200_and_503": set(flood["status_counts"]) <= {"200", "503"},
        "flood_saw_503": flood["status_counts"].get("503", 0) > 0,
        "flood_rss_flat_10pct": change is not None and abs(change) <= 0.10,
        "rows_equal_200s": doc["rows"] == doc["answered_200"],
    }


def _body(doc: dict[str, Any], offline: dict[str, Any], checks: dict[str, Any]) -> str:
    f = doc["flood"]
    flood_row = {
        **f,
        "503": f["status_counts"].get("503", 0),
        "rss_change_pct": 100 * f.get("rss_change", float("nan")),
    }
    flood_keys = ["target_rate", "seconds", "requests", "ok", "503", "errors", "not_sent_client_bound", "p99_ms"]
    memory_keys = ["rss_first_mib", "rss_last_mib", "rss_max_mib", "rss_change_pct"]
    load = doc["load_average"]
    lines = [
        markdown_table(doc["phases"], [*PHASE_KEYS, "mean_batch_size", "peak_rss_mib"]),
        "",
        f"Offline `{offline['command']}`: {offline['images_per_second']:.2f} images/s (marginal; whole command "
        f"{offline['images_per_second_whole_command']:.2f}). Largest phase / offline: "
        f"{checks['throughput_ratio_to_offline']:.2f}.",
        "",
        "Flood (open loop at the factor times the largest phase's rate):",
        "",
        markdown_table([flood_row], flood_keys),
        "",
        markdown_table([flood_row], memory_keys),
        "",
        f"Rows in the database per phase: {doc['rows']}; 200s answered: {doc['answered_200']}.",
        "",
        "Checks: " + ", ".join(f"{k} {'yes' if v is True else 'no' if v is False else v}" for k, v in checks.items()),
        "",
        f"Load average (1, 5, 15 min) at the start {load['start']}, at the end {load['end']}.",
    ]
    return "\n".join(lines)


def run(settings: ServeLoadSettings) -> dict[str, Any]:
    """Serve ``settings.run`` in a fresh process, load it, flood it; write results.{md,json}."""
    s = settings
    if not Path(s.run).is_dir():
        raise DataError(f"--run: no such run directory: {s.run}")
    run_dir, out = Path(s.run).resolve(), Path(s.out)
    out.mkdir(parents=True, exist_ok=True)
    load_start = [round(x, 2) for x in os.getloadavg()]
    images = _test_images(run_dir, s.n_images)
    bodies = [p.read_bytes() for p in images]
    offline = offline_rate(run_dir, images, s.offline_images, s.engine)
    db = out / "serve-load.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    port, log = _free_port(), out / "server.log"
    proc = _start_server(s, db, port, log)
    url = f"http://127.0.0.1:{port}"
    sampler = RssSampler(proc.pid)
    try:
        _wait_ready(url, proc, log)
        import httpx

        model = httpx.get(f"{url}/v1/models").json()["models"][0]
        doc = _measure(s, url, model["name"], bodies, sampler)
        from reconad.serve.store import ResultStore

        store = ResultStore(f"sqlite:///{db}")
        tags = [f"c{c}-" for c in s.clients] + ["flood-"]
        doc["answered_200"] = {t: phase["ok"] for t, phase in zip(tags, [*doc["phases"], doc["flood"]])}
        doc["rows"] = {t: store.count(image_prefix=t) for t in tags}
        store.close()
    finally:
        sampler.stop()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    doc.update(
        offline=offline, model=model, load_average={"start": load_start, "end": [round(x, 2) for x in os.getloadavg()]}
    )
    checks = _checks(doc, offline, s)
    doc["checks"] = checks
    settings_doc = {k: v for k, v in asdict(s).items() if k not in ("options", "echo", "command")}
    data = (
        f"{len(images)} test images of {model.get('training_data')} ({model['image_size']} px, model {model['model']})"
    )
    title = f"serve: {model['model']} at {model['image_size']} px, engine {model['engine']}, {s.workers} worker(s)"
    result = write_results(
        out, Results("serve", title, data, s.command, settings_doc, doc, _body(doc, offline, checks))
    )
    if s.echo:
        print(_body(doc, offline, checks))
        print(f"results in {out}")
    return result
