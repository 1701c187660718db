"""``reconad serve`` as a real process: SIGTERM in the middle of a load lets in-flight requests
finish and leaves every answered 200 in the database; worker processes get their settings.
"""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest

from helpers.serve import free_port, serve_process, texture_images, tiny_run, wait_ready
from reconad.serve.store import ResultStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def run(tiny_mvtec, tmp_path_factory):
    return tiny_run(tiny_mvtec, tmp_path_factory.getbasetemp())


async def _load(url: str, body: bytes, clients: int, stop_after: float, on_time) -> list[tuple[float, float, int]]:
    """``clients`` loops posting one image each until the server stops answering; (start, end, status)."""
    done: list[tuple[float, float, int]] = []
    counter = iter(range(10**6))

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            while True:
                name = f"sig-{next(counter)}.png"
                start = time.monotonic()
                try:
                    r = await c.post("/v1/models/brick/score", files=[("images", (name, body, "image/png"))])
                except httpx.HTTPError:
                    done.append((start, time.monotonic(), 0))
                    return
                done.append((start, time.monotonic(), r.status_code))

    async def trigger() -> None:
        await asyncio.sleep(stop_after)
        on_time(time.monotonic())

    await asyncio.gather(trigger(), *[client() for _ in range(clients)])
    return done


def test_sigterm_mid_load_finishes_in_flight_requests_and_records_every_200(run, tiny_mvtec, tmp_path):
    port, db = free_port(), f"sqlite:///{tmp_path / 'r.db'}"
    args = [str(run), "--port", str(port), "--db", db, "--threads", "1", "--log-level", "info"]
    # A long batch wait keeps requests in flight, so the signal surely lands in the middle of some.
    proc = serve_process([*args, "--batch-wait-ms", "60", "--max-batch", "16"], log=tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
        signalled: list[float] = []

        def send_sigterm(t: float) -> None:
            signalled.append(t)
            proc.send_signal(signal.SIGTERM)

        body = texture_images(tiny_mvtec)[0].read_bytes()
        done = asyncio.run(_load(url, body, clients=8, stop_after=1.5, on_time=send_sigterm))
        # uvicorn shuts down gracefully, then re-raises the signal it caught (exit -15, as process managers expect)
        assert proc.wait(60) in (0, -signal.SIGTERM)
        log = (tmp_path / "server.log").read_text()
        assert "Application shutdown complete" in log and "Traceback" not in log, log
    finally:
        if proc.poll() is None:
            proc.kill()
    t_sig = signalled[0]
    ok = [d for d in done if d[2] == 200]
    in_flight = [d for d in ok if d[0] < t_sig < d[1]]
    assert len(ok) > 8 and in_flight, "the signal should land while requests are being scored"
    assert {d[2] for d in done} <= {200, 0}, "only answers or refused connections, never a 5xx"
    assert ResultStore(db).count(image_prefix="sig-") == len(ok)


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
