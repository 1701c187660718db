"""``reconad serve`` security and bad input: the API key, the body and pixel limits, non-images,
truncated images, unknown models, a tampered model file, a stale ONNX export.  Each refused
request gets its status and a message naming the problem, reaches no database and leaves
the server serving.
"""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from dataclasses import replace

import httpx
import numpy as np
import pytest

from helpers.serve import copy_run, png_bytes, server_thread, texture_images, tiny_run
from reconad.cli import main
from reconad.errors import ConfigError, ModelFileError
from reconad.serve.app import create_app
from reconad.serve.config import ServeConfig, ServedRun, parse_runs
from reconad.serve.engines import load_served_model
from reconad.serve.security import read_api_key
from reconad.serve.server import preflight

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(300)]
KEY = "k3y-for-tests-0123456789abcdef"
LIMIT = 300_000  # bytes: a small body limit so the test need not send 20 MB


@pytest.fixture(scope="module")
def run(single_thread, tiny_mvtec, tmp_path_factory):
    return tiny_run(tiny_mvtec, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("secure")
    (tmp / "key").write_text(KEY + "\n")
    (tmp / "key").chmod(0o600)
    config = ServeConfig(
        runs=[ServedRun("brick", str(run))],
        db=f"sqlite:///{tmp / 'results.db'}",
        api_key_file=str(tmp / "key"),
        max_body_bytes=LIMIT,
        max_pixels=100_000,
        max_images=4,
        threads=1,
    )
    app = create_app(config)
    auth = {"Authorization": f"Bearer {KEY}"}
    with server_thread(app) as url, httpx.Client(base_url=url, timeout=60, headers=auth) as client:
        client.app_state = app.state.server  # type: ignore[attr-defined]
        yield client, app.state.server.store


def _post(client, name, data, model="brick", **kw):
    return client.post(f"/v1/models/{model}/score", files=[("images", (name, data, "image/png"))], **kw)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` with almost no data: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_without_a_valid_key_401_and_nothing_recorded(server, tiny_mvtec):
    client, store = server
    before = store.count()
    good = texture_images(tiny_mvtec)[0].read_bytes()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {KEY}"}, {"Authorization": KEY}):
        r = httpx.post(f"{client.base_url}/v1/models/brick/score", files=[("images", ("a.png", good))], headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    for path in ("/v1/models", "/v1/results", "/metrics", "/openapi.json"):
        assert httpx.get(f"{client.base_url}{path}").status_code == 401, path
    assert httpx.get(f"{client.base_url}/healthz").status_code == 200
    assert httpx.get(f"{client.base_url}/readyz").status_code == 200  # a readiness probe carries no key
    assert httpx.get(f"{client.base_url}/").status_code == 200  # the page shell holds no data
    assert store.count() == before
    assert _post(client, "a.png", good).status_code == 200 and store.count() == before + 1


def test_body_over_the_limit_is_413_declared_or_streamed(server):
    client, store = server
    before = store.count()
    big = b"\0" * (LIMIT + 1)
    r = _post(client, "big.png", big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():  # a well-formed multipart upload, sent without Content-Length
        yield b'--xyz\r\nContent-Disposition: form-data; name="images"; filename="big.png"\r\n\r\n'
        for _ in range(8):
            yield b"\0" * (LIMIT // 4)

    headers = {"Content-Type": "multipart/form-data; boundary=xyz"}
    r = client.post("/v1/models/brick/score", content=chunks(), headers=headers)
    assert r.status_code == 413
    assert store.count() == before


def test_pixel_limit_and_decompression_bombs_are_400(server):
    client, store = server
    before = store.count()
    r = _post(client, "wide.png", png_bytes(np.zeros((400, 400), np.uint8)))
    assert r.status_code == 400 and "wide.png" in r.json()["detail"] and "160000 pixels" in r.json()["detail"]
    r = _post(client, "bomb.png", _png_header_only(100_000, 100_000))  # past Pillow's own bomb check too
    assert r.status_code == 400 and "bomb.png" in r.json()["detail"]
    r = _post(client, "bomb2.png", _png_header_only(5_000, 5_000))
    assert r.status_code == 400 and "over the limit" in r.json()["detail"]
    assert store.count() == before


def test_non_images_truncated_images_and_empty_requests_are_400_naming_the_problem(server, tiny_mvtec):
    client, store = server
    before = store.count()
    good = texture_images(tiny_mvtec)[0].read_bytes()
    r = _post(client, "notes.txt", b"not an image at all")
    assert r.status_code == 400 and r.json()["detail"].startswith("notes.txt: not an image")
    r = _post(client, "cut.png", good[: len(good) // 2])
    assert r.status_code == 400 and "cut.png" in r.json()["detail"] and "truncated" in r.json()["detail"]
    r = _post(client, "empty.png", b"")
    assert r.status_code == 400 and "empty.png: empty upload" in r.json()["detail"]
    two = [("images", ("ok.png", good)), ("images", ("bad.png", b"xx"))]  # one bad image refuses the request
    r = client.post("/v1/models/brick/score", files=two)
    assert r.status_code == 400 and "bad.png" in r.json()["detail"]
    assert client.post("/v1/models/brick/score", files=[("other", ("a.png", good))]).status_code == 422
    many = [("images", (f"{i}.png", good)) for i in range(5)]
    assert client.post("/v1/models/brick/score", files=many).status_code == 422  # over --max-images
    assert store.count() == before
    assert _post(client, "after.png", good).status_code == 200  # the worker is still serving


def test_unknown_model_is_404(server, tiny_mvtec):
    client, store = server
    before = store.count()
    r = _post(client, "a.png", texture_images(tiny_mvtec)[0].read_bytes(), model="nothere")
    assert r.status_code == 404 and "nothere" in r.json()["detail"] and "brick" in r.json()["detail"]
    assert store.count() == before


def test_only_flagged_images_keep_their_overlay_by_default(server, tiny_mvtec):
    client, store = server
    model = client.app_state.models["brick"]
    files = [("images", (p.name, p.read_bytes())) for p in texture_images(tiny_mvtec)[:4]]
    scores = [r["score"] for r in client.post("/v1/models/brick/score", files=files).json()["results"]]
    # this tiny model flags nothing at its own threshold: serve one at the median score
    lower = replace(model, pipeline=model.pipeline.with_threshold(float(np.median(scores))))
    client.app_state.models["brick"] = lower
    try:
        results = client.post("/v1/models/brick/score", files=files).json()["results"]
    finally:
        client.app_state.models["brick"] = model
    assert {r["verdict"] for r in results} == {"normal", "anomalous"}
    for r in results:
        stored = client.get(f"/v1/results/{r['id']}").json()
        assert stored["has_overlay"] == (r["verdict"] == "anomalous")
        assert (stored["overlay_png"] is not None) == stored["has_overlay"]


def test_a_tampered_model_file_stops_the_start_naming_the_file(run, tmp_path, capsys):
    bad = copy_run(run, tmp_path / "bad")
    weights = bad / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    rc = main(["serve", str(bad), "--db", f"sqlite:///{tmp_path / 'r.db'}", "--port", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and str(weights) in err and "checksum" in err
    assert err.count("\n") == 1  # one line, no traceback


def test_a_stale_or_replaced_onnx_export_is_refused(run, tmp_path):
    copy = copy_run(run, tmp_path / "run")
    served = ServedRun("brick", str(copy))
    meta_path = copy / "export" / "model.json"
    meta = json.loads(meta_path.read_text())
    stale = {**meta, "weights_sha256": "0" * 64}
    meta_path.write_text(json.dumps(stale))
    with pytest.raises(ModelFileError, match="stale or foreign"):
        load_served_model(served, "onnx")
    meta_path.write_text(json.dumps({**meta, "onnx_sha256": "0" * 64}))
    with pytest.raises(ModelFileError, match="model.onnx does not match its checksum"):
        load_served_model(served, "onnx")
    meta_path.write_text(json.dumps({k: v for k, v in meta.items() if k != "weights_sha256"}))
    with pytest.raises(ModelFileError, match="re-export"):
        load_served_model(served, "onnx")
    shutil.rmtree(copy / "export")  # no export: written on first use, with the checksum recorded
    model = load_served_model(served, "onnx")
    assert model.engine.name == "onnx"
    assert json.loads(meta_path.read_text())["weights_sha256"] == model.sha256
    assert load_served_model(served, "torch").engine.name == "torch"


def test_key_files_and_settings_are_checked_before_serving(run, tmp_path):
    for text, message in (("", "nothing"), ("short", "at least 16"), ("two words here and more", "spaces")):
        (tmp_path / "k").write_text(text)
        with pytest.raises(ConfigError, match=message):
            read_api_key(tmp_path / "k")
    with pytest.raises(ConfigError, match="cannot read"):
        read_api_key(tmp_path / "missing")
    with pytest.raises(ConfigError, match="two runs"):
        parse_runs([str(run), str(run)])
    assert [r.name for r in parse_runs([f"a={run}", str(run)])] == ["a", "brick"]
    config = ServeConfig(runs=parse_runs([str(run)]))
    assert config.host == "127.0.0.1" and config.max_body_bytes == 20 * 1024 * 1024
    assert config.db_url == f"sqlite:///{run / 'results.db'}"
    with pytest.raises(ConfigError, match="newer"):
        from reconad.serve import store as store_mod

        db = f"sqlite:///{tmp_path / 'newer.db'}"
        s = store_mod.ResultStore(db)
        s.migrate()
        with s.engine.begin() as conn:
            conn.execute(store_mod.schema.update().values(version=store_mod.SCHEMA_VERSION + 1))
        preflight(ServeConfig(runs=parse_runs([str(run)]), db=db))
