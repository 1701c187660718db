"""A sweep of requests to ``reconad serve``, as one table: what a new client sends by
mistake or by malice (bad uploads, methods, headers, keys, limits, models, result queries).

Each case is one request to a real uvicorn on 127.0.0.1 serving a toy autoencoder behind
an API key (``helpers.serve_toy``), either as is (``toy``) or scored by tiles (``tiled``),
and expects one status.  Every answer: never a 5xx; a refusal's ``detail`` is one line that
holds the case's phrase (a 422's list: every message one line); a refused request records
nothing, a scored one records each of its images.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest

from helpers.serve import png_bytes, server_thread
from helpers.serve_toy import AUTH, KEY, TOY_SIZE, multipart, raw_request, read_all, toy_config
from reconad.serve.app import create_app

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(300)]

LIMIT = 200_000  # body bytes
PIXELS = 100_000  # pixels per image
SCORE = "/v1/models/toy/score"


def _rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


PNG = png_bytes(_rgb(TOY_SIZE, TOY_SIZE))
IMAGES: dict[str, bytes] = {
    "png": PNG,
    "jpeg": png_bytes(_rgb(20, 30), fmt="JPEG"),
    "gif": png_bytes(_rgb(20, 20), fmt="GIF"),
    "bmp": png_bytes(_rgb(20, 20), fmt="BMP"),
    "webp": png_bytes(_rgb(20, 20), fmt="WEBP"),
    "tiff": png_bytes(_rgb(20, 20), fmt="TIFF"),
    "gray": png_bytes(_rgb(20, 20)[..., 0]),
    "gray16": png_bytes(_rgb(20, 20)[..., 0].astype(np.uint16) * 257),
    "rgba": png_bytes(np.dstack([_rgb(20, 20), np.full((20, 20), 128, np.uint8)])),
    "one-pixel": png_bytes(_rgb(1, 1)),
    "thin": png_bytes(_rgb(3, 200)),
    "tall": png_bytes(_rgb(200, 3)),
    "constant": png_bytes(np.zeros((20, 20, 3), np.uint8)),
    "big-tiled": png_bytes(_rgb(64, 64)),
    "forty": png_bytes(_rgb(40, 40)),
    "over-pixels": png_bytes(np.zeros((400, 400), np.uint8)),
    "bomb": _png_header_only(100_000, 100_000),
    "truncated": PNG[: len(PNG) // 2],
    "text": b"just some text, not an image",
    "empty": b"",
    "svg": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
    "pdf": b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF",
    "png-magic-only": b"\x89PNG\r\n\x1a\n",
}


def files(*names: str, field_name: str = "images", filename: str | None = None) -> dict[str, Any]:
    return {"files": [(field_name, (filename or f"{n}-{i}.png", IMAGES[n])) for i, n in enumerate(names)]}


@dataclass
class Case:
    """One request: ``method`` ``path`` with httpx keyword arguments ``kw`` (or ``raw`` bytes
    sent on a socket: request line and headers, then the body), the key unless ``auth`` is
    False, and the expected ``status`` with the ``phrase`` its detail holds.  ``images``: how
    many rows a 200 records; ``check``: more about a 200's body."""

    id: str
    method: str
    path: str
    status: int
    phrase: str = ""
    kw: dict[str, Any] = field(default_factory=dict)
    auth: bool = True
    server: str = "toy"
    raw: tuple[bytes, bytes] | None = None
    images: int = 0
    check: Callable[[Any], None] | None = None

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


def _raw_head(path: str, content_type: bytes, length: str, *extra: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: test", f"Authorization: Bearer {KEY}", "Connection: close"]
    lines += [f"Content-Type: {content_type.decode()}", f"Content-Length: {length}", *extra]
    return "\r\n".join(lines).encode()


def _named(name: str) -> Callable[[Any], None]:
    def check(body: Any) -> None:
        assert [r["image_name"] for r in body["results"]] == [name]

    return check


def _has(key: str) -> Callable[[Any], None]:
    def check(body: Any) -> None:
        assert all(r[key] is not None for r in body["results"])

    return check


def _finite_scores(body: Any) -> None:
    assert all(np.isfinite(r["score"]) for r in body["results"])


_CT, _FORM = multipart("a.png", PNG)
_CT2, _FORM2 = multipart("a\x07b\x1b.png", PNG)
_ID = "0" * 32

CASES = [
    # ------------------------------------------------------------------ the key
    Case("no-key-score", "POST", SCORE, 401, "missing or invalid API key", files("png"), auth=False),
    Case("no-key-models", "GET", "/v1/models", 401, "API key", auth=False),
    Case("no-key-results", "GET", "/v1/results", 401, "API key", auth=False),
    Case("no-key-result", "GET", f"/v1/results/{_ID}", 401, "API key", auth=False),
    Case("no-key-metrics", "GET", "/metrics", 401, "API key", auth=False),
    Case("no-key-openapi", "GET", "/openapi.json", 401, "API key", auth=False),
    Case("no-key-docs", "GET", "/docs", 401, "API key", auth=False),
    Case("wrong-key", "GET", "/v1/models", 401, "API key", {"headers": {"Authorization": "Bearer wrong"}}, auth=False),
    Case(
        "key-as-basic", "GET", "/v1/models", 401, "API key", {"headers": {"Authorization": f"Basic {KEY}"}}, auth=False
    ),
    Case("key-without-scheme", "GET", "/v1/models", 401, "API key", {"headers": {"Authorization": KEY}}, auth=False),
    Case("empty-bearer", "GET", "/v1/models", 401, "API key", {"headers": {"Authorization": "Bearer"}}, auth=False),
    Case(
        "key-prefix",
        "GET",
        "/v1/models",
        401,
        "API key",
        {"headers": {"Authorization": f"Bearer {KEY[:-1]}"}},
        auth=False,
    ),
    Case(
        "key-longer", "GET", "/v1/models", 401, "API key", {"headers": {"Authorization": f"Bearer {KEY}x"}}, auth=False
    ),
    Case("scheme-lowercase", "GET", "/v1/models", 200, kw={"headers": {"Authorization": f"bearer {KEY}"}}, auth=False),
    Case("healthz-without-key", "GET", "/healthz", 200, auth=False),
    Case("readyz-without-key", "GET", "/readyz", 200, auth=False),
    Case("readyz-wrong-key", "GET", "/readyz", 200, kw={"headers": {"Authorization": "Bearer wrong"}}, auth=False),
    Case("page-without-key", "GET", "/", 200, auth=False),
    # ------------------------------------------------------------------ methods and paths
    Case("get-on-score", "GET", SCORE, 405, "Method Not Allowed"),
    Case("put-on-score", "PUT", SCORE, 405, "Method Not Allowed", files("png")),
    Case("delete-models", "DELETE", "/v1/models", 405, "Method Not Allowed"),
    Case("patch-results", "PATCH", "/v1/results", 405, "Method Not Allowed"),
    Case("delete-a-result", "DELETE", f"/v1/results/{_ID}", 405, "Method Not Allowed"),
    Case("post-healthz", "POST", "/healthz", 405, "Method Not Allowed", auth=False),
    Case("invented-method", "BREW", "/v1/models", 405, "Method Not Allowed"),
    Case("invented-method-no-key", "BREW", "/v1/models", 401, "API key", auth=False),
    Case("unknown-path", "GET", "/v2/models", 404, "Not Found"),
    Case("model-without-route", "GET", "/v1/models/toy", 404, "Not Found"),
    Case("score-with-a-tail", "POST", f"{SCORE}/again", 404, "Not Found", files("png")),
    Case("static-missing", "GET", "/static/nothere.js", 404, "Not Found", auth=False),
    # ------------------------------------------------------------------ models
    Case(
        "unknown-model", "POST", "/v1/models/nothere/score", 404, "unknown model 'nothere'; served: toy", files("png")
    ),
    Case("model-name-dots", "POST", "/v1/models/..x/score", 422, "pattern", files("png")),
    Case("model-name-too-long", "POST", f"/v1/models/{'m' * 65}/score", 422, "pattern", files("png")),
    Case("model-name-unicode", "POST", "/v1/models/mödel/score", 422, "pattern", files("png")),
    # ------------------------------------------------------------------ uploads that score
    *[
        Case(f"upload-{n}", "POST", SCORE, 200, kw=files(n), images=1, check=_finite_scores)
        for n in (
            "png",
            "jpeg",
            "gif",
            "bmp",
            "webp",
            "tiff",
            "gray",
            "gray16",
            "rgba",
            "one-pixel",
            "thin",
            "constant",
        )
    ],
    Case(
        "overlay-of-a-thin-image",
        "POST",
        SCORE,
        200,
        kw={**files("thin"), "params": {"map": "png"}},
        images=1,
        check=_has("overlay_png"),
    ),
    Case("raw-map", "POST", SCORE, 200, kw={**files("png"), "params": {"map": "raw"}}, images=1, check=_has("map")),
    Case("four-images", "POST", SCORE, 200, kw=files("png", "jpeg", "gray", "rgba"), images=4),
    Case(
        "name-with-folders",
        "POST",
        SCORE,
        200,
        kw=files("png", filename="../../etc/passwd.png"),
        images=1,
        check=_named("passwd.png"),
    ),
    Case(
        "name-windows-path",
        "POST",
        SCORE,
        200,
        kw=files("png", filename="C:\\parts\\p1.png"),
        images=1,
        check=_named("p1.png"),
    ),
    Case(
        "name-control-chars",
        "POST",
        SCORE,
        200,
        raw=(_raw_head(SCORE, _CT2, str(len(_FORM2))), _FORM2),
        images=1,
        check=_named("ab.png"),
    ),
    Case(
        "name-very-long",
        "POST",
        SCORE,
        200,
        kw=files("png", filename="n" * 600 + ".png"),
        images=1,
        check=_named("n" * 255),
    ),
    # ------------------------------------------------------------------ uploads refused
    Case("upload-text", "POST", SCORE, 400, "text-0.png: not an image", files("text")),
    Case("upload-empty", "POST", SCORE, 400, "empty-0.png: empty upload", files("empty")),
    Case("upload-truncated", "POST", SCORE, 400, "truncated-0.png", files("truncated")),
    Case("upload-svg", "POST", SCORE, 400, "svg-0.png: not an image", files("svg")),
    Case("upload-pdf", "POST", SCORE, 400, "pdf-0.png: not an image", files("pdf")),
    Case("upload-png-magic-only", "POST", SCORE, 400, "png-magic-only-0.png", files("png-magic-only")),
    Case(
        "upload-over-max-pixels", "POST", SCORE, 400, "160000 pixels is over the limit of 100000", files("over-pixels")
    ),
    Case("upload-bomb", "POST", SCORE, 400, "bomb-0.png", files("bomb")),
    Case("one-bad-among-good", "POST", SCORE, 400, "text-1.png: not an image", files("png", "text", "png")),
    Case("five-images", "POST", SCORE, 422, "at most 4", files("png", "png", "png", "png", "png")),
    Case("field-not-images", "POST", SCORE, 422, "Field required", files("png", field_name="image")),
    Case("images-as-text-field", "POST", SCORE, 422, "images", {"data": {"images": "not a file"}}),
    Case("no-body", "POST", SCORE, 422, "Field required"),
    Case("json-body", "POST", SCORE, 422, "Field required", {"json": {"images": ["a.png"]}}),
    Case(
        "multipart-no-boundary",
        "POST",
        SCORE,
        400,
        "Missing boundary in multipart",
        {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}},
    ),
    Case(
        "multipart-wrong-boundary",
        "POST",
        SCORE,
        400,
        "Invalid multipart data",
        {"content": _FORM, "headers": {"Content-Type": "multipart/form-data; boundary=other"}},
    ),
    # ------------------------------------------------------------------ limits
    Case(
        "body-over-limit",
        "POST",
        SCORE,
        413,
        f"over the limit of {LIMIT}",
        {"files": [("images", ("big.png", b"\0" * (LIMIT + 1)))]},
    ),
    Case(
        "body-over-limit-no-key",
        "POST",
        SCORE,
        401,
        "API key",
        {"files": [("images", ("big.png", b"\0" * (LIMIT + 1)))]},
        auth=False,
    ),
    # refused by uvicorn's HTTP parser before the app: its own one line, in plain text
    Case(
        "content-length-not-a-number",
        "POST",
        SCORE,
        400,
        "Invalid HTTP request",
        raw=(_raw_head(SCORE, _CT, "ten"), _FORM),
    ),
    Case(
        "content-length-negative", "POST", SCORE, 400, "Invalid HTTP request", raw=(_raw_head(SCORE, _CT, "-5"), _FORM)
    ),
    Case(
        "two-content-lengths",
        "POST",
        SCORE,
        400,
        "Invalid HTTP request",
        raw=(_raw_head(SCORE, _CT, "5", "Content-Length: 7"), _FORM),
    ),
    Case(
        "content-length-over-limit",
        "POST",
        SCORE,
        413,
        f"over the limit of {LIMIT}",
        raw=(_raw_head(SCORE, _CT, str(LIMIT + 1)), _FORM),
    ),
    Case(
        "body-never-arrives",
        "POST",
        SCORE,
        408,
        "did not arrive within 0.5 s",
        raw=(_raw_head(SCORE, _CT, str(len(_FORM))), _FORM[:100]),
    ),
    Case("tiled-one-tile", "POST", SCORE, 200, kw=files("png"), server="tiled", images=1),
    Case(
        "tiled-thin",
        "POST",
        SCORE,
        200,
        kw={**files("thin"), "params": {"map": "png"}},
        server="tiled",
        images=1,
        check=_has("overlay_png"),
    ),
    Case(
        "tiled-tall-raw",
        "POST",
        SCORE,
        200,
        kw={**files("tall"), "params": {"map": "raw"}},
        server="tiled",
        images=1,
        check=_has("map"),
    ),
    Case("tiled-one-pixel", "POST", SCORE, 200, kw=files("one-pixel"), server="tiled", images=1),
    Case("tiled-two-of-nine-tiles", "POST", SCORE, 200, kw=files("forty", "forty"), server="tiled", images=2),
    Case(
        "tiled-over-max-tiles",
        "POST",
        SCORE,
        413,
        "big-tiled-0.png: this request needs over 20 tiles",
        files("big-tiled"),
        server="tiled",
    ),
    Case(
        "tiled-three-of-nine-tiles",
        "POST",
        SCORE,
        413,
        "forty-2.png: this request needs over 20 tiles of 16x16 px (27 so far)",
        files("forty", "forty", "forty"),
        server="tiled",
    ),
    # ------------------------------------------------------------------ queries
    Case("map-unknown", "POST", SCORE, 422, "'png' or 'raw'", {**files("png"), "params": {"map": "jpeg"}}),
    Case(
        "score-unknown-query",
        "POST",
        SCORE,
        422,
        "unknown query parameter",
        {**files("png"), "params": {"maps": "png"}},
    ),
    Case("results-default", "GET", "/v1/results", 200),
    Case(
        "results-filtered", "GET", "/v1/results", 200, kw={"params": {"model": "toy", "verdict": "normal", "limit": 5}}
    ),
    Case("results-since-offset", "GET", "/v1/results", 200, kw={"params": {"since": "2024-05-01T12:00:00+02:00"}}),
    Case("results-since-date", "GET", "/v1/results", 200, kw={"params": {"since": "2024-05-01"}}),
    Case("results-limit-zero", "GET", "/v1/results", 422, "greater than or equal to 1", {"params": {"limit": 0}}),
    Case("results-limit-huge", "GET", "/v1/results", 422, "less than or equal to 1000", {"params": {"limit": 10**6}}),
    Case("results-limit-text", "GET", "/v1/results", 422, "valid integer", {"params": {"limit": "ten"}}),
    Case("results-since-number", "GET", "/v1/results", 422, "ISO 8601", {"params": {"since": "1700000000"}}),
    Case("results-since-words", "GET", "/v1/results", 422, "since", {"params": {"since": "yesterday"}}),
    Case(
        "results-verdict-unknown",
        "GET",
        "/v1/results",
        422,
        "'anomalous' or 'normal'",
        {"params": {"verdict": "maybe"}},
    ),
    Case("results-model-traversal", "GET", "/v1/results", 422, "pattern", {"params": {"model": "../x"}}),
    Case(
        "results-misspelt-filter",
        "GET",
        "/v1/results",
        422,
        "unknown query parameter",
        {"params": {"verdic": "normal"}},
    ),
    Case("result-not-found", "GET", f"/v1/results/{_ID}", 404, f"no result '{_ID}'"),
    Case("result-id-too-long", "GET", f"/v1/results/{'a' * 65}", 422, "at most 64"),
    Case("result-id-sql", "GET", "/v1/results/1' OR '1'='1", 404, "no result"),
    Case("models-with-query", "GET", "/v1/models", 422, "unknown query parameter", {"params": {"x": "1"}}),
    Case("metrics-with-key", "GET", "/metrics", 200),
]


@pytest.fixture(scope="module")
def servers(single_thread, tmp_path_factory):
    """Both servers, started once for the module: (base URL, server state) by name."""
    limits = dict(max_body_bytes=LIMIT, max_pixels=PIXELS, max_images=4, body_timeout_s=0.5, keep_overlays="all")
    toy = create_app(toy_config(tmp_path_factory.mktemp("sweep-toy"), **limits))
    tiled = create_app(
        toy_config(tmp_path_factory.mktemp("sweep-tiled"), tile_size=TOY_SIZE, tile_overlap=2, max_tiles=20, **limits)
    )
    with server_thread(toy) as toy_url:
        with pytest.warns(UserWarning, match="calibrated with"), server_thread(tiled) as tiled_url:
            yield {"toy": (toy_url, toy.state.server), "tiled": (tiled_url, tiled.state.server)}


def _send(case: Case, url: str) -> tuple[int, str, bytes]:
    """(status, content type, body) of the case's request."""
    if case.raw is not None:
        answer = read_all(raw_request(url, *case.raw))
        head, _, body = answer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers.get("content-type", ""), body
    kw = dict(case.kw)
    if case.auth:
        kw["headers"] = {**AUTH, **kw.get("headers", {})}
    r = httpx.request(case.method, url + case.path, timeout=60, **kw)
    return r.status_code, r.headers.get("content-type", ""), r.content


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_sweep(case: Case, servers: dict[str, Any]) -> None:
    url, state = servers[case.server]
    before = state.store.count()
    status, content_type, body = _send(case, url)
    assert status < 500, body[:500]
    assert status == case.status, body[:500]
    recorded = state.store.count() - before
    if status != 200:
        assert recorded == 0
        if content_type.startswith("text/plain"):  # uvicorn's own refusal of a malformed request
            text = body.decode()
            assert status == 400 and "\n" not in text.strip() and case.phrase in text, text
            return
        assert content_type.startswith("application/json"), content_type
        detail = json.loads(body)["detail"]
        if isinstance(detail, list):  # 422: the validation errors, each one line
            assert all("\n" not in str(err.get("msg", "")) for err in detail)
            text = json.dumps(detail)
        else:
            assert isinstance(detail, str) and "\n" not in detail and detail.strip() == detail
            text = detail
        assert case.phrase in text, text
        return
    assert recorded == case.images
    if case.check is not None:
        case.check(json.loads(body))


def test_the_sweep_has_at_least_sixty_cases_over_every_route() -> None:
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
    paths = {c.path.split("?")[0] for c in CASES}
    assert {SCORE, "/v1/models", "/v1/results", "/healthz", "/readyz", "/metrics", "/openapi.json"} <= paths
    assert {c.status for c in CASES} >= {200, 400, 401, 404, 405, 408, 413, 422}
