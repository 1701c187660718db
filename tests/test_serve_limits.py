"""``reconad serve`` bounded by work, not by the client's good will: labels of /metrics from
fixed sets whatever a client sends, tiles per request (413), a deadline for a request body
(408), and probes that answer without the key.  A toy autoencoder (16 px, PyTorch) on a
real uvicorn on 127.0.0.1."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from helpers.serve import png_bytes, server_thread
from helpers.serve_toy import AUTH, KEY, TOY_SIZE, metric, multipart, raw_request, read_all, toy_config
from reconad.errors import ConfigError
from reconad.serve.app import create_app
from reconad.serve.metrics import method_label, route_label, status_label

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def toy(single_thread, tmp_path_factory):
    app = create_app(toy_config(tmp_path_factory.mktemp("limits"), body_timeout_s=0.5))
    with server_thread(app) as url:
        yield url, app.state.server


@pytest.fixture(scope="module")
def tiled(single_thread, tmp_path_factory):
    """The toy model scored by 16 px tiles overlapping by 2, at most 20 tiles a request."""
    config = toy_config(tmp_path_factory.mktemp("tiled"), tile_size=TOY_SIZE, tile_overlap=2, max_tiles=20)
    with pytest.warns(UserWarning, match="calibrated with"):
        app = create_app(config)
        with server_thread(app) as url:
            yield url, app.state.server


def _image(side: int) -> bytes:
    return png_bytes(np.random.default_rng(side).integers(0, 255, (side, side, 3), dtype=np.uint8))


def _series(url: str) -> list[str]:
    """The sample lines of /metrics, without their values."""
    text = httpx.get(f"{url}/metrics", headers=AUTH).text
    return sorted(line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#"))


def test_invented_methods_and_paths_add_no_metric_series(toy):
    """200 requests without a key, each with a method and a path of its own, used to add 200 series."""
    url, _ = toy
    with httpx.Client(base_url=url, timeout=60) as client:
        client.request("INVENTED", "/warm-up")  # the one series such requests share
        client.request("INVENTED", "/v1/models", headers=AUTH)
        _series(url)
        before = _series(url)
        for i in range(200):
            assert client.request(f"M{i}X", f"/p{i}/{'z' * i}").status_code == 401
            client.request(f"Q{i}", "/v1/models", headers=AUTH)
        after = _series(url)
    assert len(after) == len(before), f"{len(after) - len(before)} new series"
    assert after == before
    assert any('method="other"' in line for line in after)
    assert not any("M17X" in line or "/p17" in line for line in after)


def test_labels_come_from_fixed_sets():
    assert [method_label(m) for m in ("GET", "POST", "get", "BREW", "X" * 999)] == ["GET", "POST"] + ["other"] * 3
    assert [status_label(s) for s in (200, 413, 418, 299, 599, 102)] == ["200", "413", "4xx", "2xx", "5xx", "1xx"]
    assert route_label("/v1/models/any-name/score") == "/v1/models/{name}/score"
    assert route_label("/v1/results/" + "a" * 64) == "/v1/results/{id}"
    assert {route_label(f"/x{i}") for i in range(50)} == {"other"}


def test_probes_answer_without_the_key_and_agree(toy):
    url, state = toy
    assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{url}/readyz").json() == {"ready": True, "models": ["toy"]}
    assert httpx.get(f"{url}/readyz", headers={"Authorization": "Bearer wrong"}).status_code == 200
    for path in ("/metrics", "/v1/models", "/v1/results"):
        assert httpx.get(f"{url}{path}").status_code == 401, path
    paths = create_app(state.config).openapi()["paths"]
    for probe in ("/healthz", "/readyz"):
        assert "security" not in paths[probe]["get"] and "401" not in paths[probe]["get"]["responses"]
    assert paths["/metrics"]["get"]["security"] == [{"apiKey": []}]


def test_a_body_that_never_arrives_is_408_and_the_connection_closed(toy):
    url, state = toy
    before = state.store.count()
    content_type, body = multipart("slow.png", _image(TOY_SIZE))
    head = (
        f"POST /v1/models/toy/score HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: {content_type.decode()}\r\nContent-Length: {len(body)}"
    ).encode()
    answer = read_all(raw_request(url, head, body[: len(body) // 2]))  # the rest never comes
    status, _, rest = answer.partition(b"\r\n")
    headers, _, payload = rest.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408") and b"connection: close" in headers.lower()
    assert json.loads(payload) == {"detail": "the request body did not arrive within 0.5 s"}
    assert state.store.count() == before
    text = httpx.get(f"{url}/metrics", headers=AUTH).text
    assert metric(text, "reconad_rejected_total", reason="body_timeout") >= 1
    ok = httpx.post(f"{url}/v1/models/toy/score", files=[("images", ("ok.png", _image(TOY_SIZE)))], headers=AUTH)
    assert ok.status_code == 200  # a body that arrives is scored as before


def test_a_request_over_max_tiles_is_413_before_any_scoring(tiled):
    url, state = tiled
    post = lambda *sides: httpx.post(
        f"{url}/v1/models/toy/score",
        files=[("images", (f"{s}-{i}.png", _image(s))) for i, s in enumerate(sides)],
        headers=AUTH,
        timeout=60,
    )
    assert post(TOY_SIZE).status_code == 200
    assert post(40, 40).status_code == 200  # 9 tiles each: 18 of 20
    scored = metric(httpx.get(f"{url}/metrics", headers=AUTH).text, "reconad_images_scored_total")
    rows = state.store.count()
    for sides, name, tiles in (((64,), "64-0.png", 25), ((40, 40, 40), "40-2.png", 27)):
        r = post(*sides)
        assert r.status_code == 413, r.text
        detail = r.json()["detail"]
        assert detail.startswith(name) and f"({tiles} so far)" in detail and "--max-tiles is 20" in detail
        assert "\n" not in detail
    text = httpx.get(f"{url}/metrics", headers=AUTH).text
    assert metric(text, "reconad_images_scored_total") == scored and state.store.count() == rows
    assert metric(text, "reconad_rejected_total", reason="too_many_tiles") == 2
    assert state.batchers["toy"].depth == 0  # the refused requests gave their queue room back


def test_the_in_flight_gauge_counts_the_scrape_itself(toy):
    url, _ = toy
    assert metric(httpx.get(f"{url}/metrics", headers=AUTH).text, "reconad_http_requests_in_flight") == 1


@pytest.mark.parametrize(
    ("setting", "phrase"),
    [
        ({"max_tiles": 0}, "max-tiles must be >= 1"),
        ({"body_timeout_s": 0}, "body-timeout-s must be a number of seconds > 0"),
        ({"body_timeout_s": float("nan")}, "body-timeout-s"),
        ({"body_timeout_s": float("inf")}, "body-timeout-s"),
    ],
)
def test_limit_settings_are_checked(tmp_path, setting, phrase):
    with pytest.raises(ConfigError, match=phrase):
        toy_config(tmp_path, **setting)


def test_a_connection_that_never_finishes_its_headers_is_closed(toy, monkeypatch):
    """Below ASGI: ``reconad serve`` runs uvicorn with a protocol that closes a connection on
    which no request began in time (it used to be held until the client went)."""
    import socket
    import threading

    import uvicorn

    from helpers.serve import free_port, wait_ready
    from reconad.serve.connections import HEADER_TIMEOUT_ENV, HeaderDeadlineProtocol

    monkeypatch.setenv(HEADER_TIMEOUT_ENV, "0.5")
    config = uvicorn.Config(
        create_app(toy[1].config), host="127.0.0.1", port=free_port(), log_level="warning", http=HeaderDeadlineProtocol
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{config.port}"
        wait_ready(url)
        silent = socket.create_connection(("127.0.0.1", config.port), timeout=60)  # sends nothing
        partial = socket.create_connection(("127.0.0.1", config.port), timeout=60)
        partial.sendall(b"GET /healthz HTTP/1.1\r\nHost: te")  # the headers never end
        assert read_all(silent) == b"" and read_all(partial) == b""
        # a request that begins is answered; then the wait for the next one starts over
        answered = raw_request(url, b"GET /healthz HTTP/1.1\r\nHost: test")
        everything = read_all(answered)  # until the server closes it
        assert everything.startswith(b"HTTP/1.1 200") and everything.endswith(b'{"status":"ok"}')
    finally:
        server.should_exit = True
        thread.join(30)


def test_reconad_serve_runs_uvicorn_with_the_header_deadline(tmp_path, monkeypatch):
    import os

    import uvicorn

    from reconad.serve.connections import HEADER_TIMEOUT_ENV, HeaderDeadlineProtocol
    from reconad.serve.server import serve

    seen: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    monkeypatch.delenv(HEADER_TIMEOUT_ENV, raising=False)
    serve(toy_config(tmp_path, body_timeout_s=7.5))
    assert seen["http"] is HeaderDeadlineProtocol and os.environ[HEADER_TIMEOUT_ENV] == "7.5"
