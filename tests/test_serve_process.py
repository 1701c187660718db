"""``reconad serve`` as a real process: SIGTERM in the middle of a load lets in-flight requests
finish and leaves every answered 200 in the database; worker processes get their settings.
"""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from helpers.serve import free_port, serve_process, texture_images, tiny_run, wait_ready
from helpers.serve_toy import metric, multipart, raw_request, read_all
from reconad.serve.store import ResultStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def run(tiny_mvtec, tmp_path_factory):
    return tiny_run(tiny_mvtec, tmp_path_factory.getbasetemp())


class _Load:
    """``clients`` loops posting one image each until the server stops answering.

    Every step the test waits for is an event, never a time: ``enough`` when more than
    ``enough_ok`` requests were answered 200; ``pause``/``resume`` hold the loops between
    requests, and ``idle`` says that all of them are held."""

    def __init__(self, url: str, body: bytes, clients: int, enough_ok: int) -> None:
        self.url, self.body, self.clients, self.enough_ok = url, body, clients, enough_ok
        self.statuses: list[int] = []
        self.enough, self.pause, self.resume, self.idle = (asyncio.Event() for _ in range(4))
        self.held = 0
        self.counter = iter(range(10**6))

    async def client(self) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=60) as c:
            while True:
                if self.pause.is_set() and not self.resume.is_set():
                    self.held += 1
                    if self.held == self.clients:
                        self.idle.set()
                    await self.resume.wait()
                name = f"sig-{next(self.counter)}.png"
                try:
                    r = await c.post("/v1/models/brick/score", files=[("images", (name, self.body, "image/png"))])
                except httpx.HTTPError:
                    self.statuses.append(0)
                    return
                self.statuses.append(r.status_code)
                if self.statuses.count(200) > self.enough_ok:
                    self.enough.set()


async def _in_flight(url: str) -> float:
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        return metric((await c.get("/metrics")).text, "reconad_http_requests_in_flight")


async def _signal_mid_load(url: str, body: bytes, send_sigterm) -> tuple[list[int], bytes]:
    """Load the server; once enough was answered, hold the loops, start one request whose body
    is half sent, wait until /metrics counts it in flight (besides the scrape), let the loops
    go on, signal, then send the rest of that body.  (load statuses, that request's answer)."""
    load = _Load(url, body, clients=8, enough_ok=8)
    tasks = [asyncio.ensure_future(load.client()) for _ in range(load.clients)]
    await load.enough.wait()
    load.pause.set()
    await load.idle.wait()
    content_type, form = multipart("sig-in-flight.png", body)
    head = (
        f"POST /v1/models/brick/score HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type.decode()}\r\n"
        f"Content-Length: {len(form)}"
    ).encode()
    sock = raw_request(url, head, form[: len(form) // 2])
    while await _in_flight(url) < 2:  # the scrape and the half-sent request
        await asyncio.sleep(0.05)
    load.resume.set()
    send_sigterm()
    sock.sendall(form[len(form) // 2 :])
    answer = await asyncio.to_thread(read_all, sock)
    await asyncio.gather(*tasks)
    return load.statuses, answer


def test_sigterm_mid_load_finishes_in_flight_requests_and_records_every_200(run, tiny_mvtec, tmp_path):
    port, db = free_port(), f"sqlite:///{tmp_path / 'r.db'}"
    args = [str(run), "--port", str(port), "--db", db, "--threads", "1", "--log-level", "info"]
    proc = serve_process([*args, "--batch-wait-ms", "20", "--max-batch", "16"], log=tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        body = texture_images(tiny_mvtec)[0].read_bytes()
        statuses, answer = asyncio.run(_signal_mid_load(url, body, lambda: proc.send_signal(signal.SIGTERM)))
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit -15, as process managers expect)
        assert proc.wait(60) in (0, -signal.SIGTERM)
        log = (tmp_path / "server.log").read_text()
        assert "Application shutdown complete" in log and "Traceback" not in log, log
    finally:
        if proc.poll() is None:
            proc.kill()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]  # in flight at the signal: finished
    assert b'"sig-in-flight.png"' in answer
    assert statuses.count(200) > 8 and set(statuses) <= {200, 0}, "only answers or refused connections, never a 5xx"
    assert ResultStore(db).count(image_prefix="sig-") == statuses.count(200) + 1
    assert ResultStore(db).count(image_prefix="sig-in-flight") == 1


def test_worker_processes_build_the_app_from_the_environment(run, tiny_mvtec, tmp_path, monkeypatch):
    """``--workers N`` hands each uvicorn worker the configuration as JSON in the environment;
    the factory it calls builds the same app (several processes writing one SQLite file are
    tested in test_serve_store)."""
    from helpers.serve import server_thread
    from reconad.serve.app import app_from_env
    from reconad.serve.config import CONFIG_ENV, ServeConfig, parse_runs

    config = ServeConfig(runs=parse_runs([f"tiles={run}"]), db=f"sqlite:///{tmp_path / 'r.db'}", workers=2)
    monkeypatch.setenv(CONFIG_ENV, config.to_json())
    image = texture_images(tiny_mvtec)[0]
    with server_thread(app_from_env()) as url:
        r = httpx.post(f"{url}/v1/models/tiles/score", files=[("images", (image.name, image.read_bytes()))])
        assert r.status_code == 200 and r.json()["model"] == "tiles"
    assert ResultStore(config.db_url).count(model="tiles") == 1
    assert ServeConfig.from_json(config.to_json()) == config
