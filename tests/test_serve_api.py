"""``reconad serve``'s REST API on a real uvicorn (in a thread, 127.0.0.1, a free port):
models, scoring one and several images with overlays and raw maps, the results database
behind /v1/results, health, readiness, Prometheus metrics, micro-batching and the bounded
queue.  The server pre-processes uploads exactly as the Detector reads files.
"""

from __future__ import annotations

import asyncio
import base64
import io
import re
import threading

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from helpers.serve import SIZE, server_thread, texture_images, tiny_run
from reconad.data.image_io import load_image
from reconad.serve.app import create_app
from reconad.serve.batcher import MicroBatcher, QueueFull
from reconad.serve.config import ServeConfig, ServedRun
from reconad.serve.decode import decode_upload

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def run(single_thread, tiny_mvtec, tmp_path_factory):
    return tiny_run(tiny_mvtec, tmp_path_factory.getbasetemp())


@pytest.fixture(scope="module")
def server(run, tmp_path_factory):
    db = tmp_path_factory.mktemp("api-db") / "results.db"
    config = ServeConfig(runs=[ServedRun("brick", str(run))], db=f"sqlite:///{db}", keep_overlays="all", threads=1)
    app = create_app(config)
    with server_thread(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client, app.state.server


def _files(paths):
    return [("images", (p.name, p.read_bytes(), "image/png")) for p in paths]


def test_models_lists_the_run_with_its_threshold_data_and_checksum(server, run):
    client, _ = server
    (model,) = client.get("/v1/models").json()["models"]
    import json

    cfg = json.loads((run / "model" / "config.json").read_text())
    assert model["name"] == "brick" and model["model"] == "hfr" and model["image_size"] == SIZE
    assert model["model_sha256"] == cfg["weights_sha256"] and model["engine"] == "onnx"
    assert model["threshold"] == pytest.approx(cfg["threshold"]) and model["threshold_basis"] == "fpr=0.25"
    assert "brick" in model["training_data"]


def test_score_several_images_with_overlays_matches_the_exported_model(server, run, tiny_mvtec):
    from reconad.export import OnnxDetector

    client, _ = server
    paths = texture_images(tiny_mvtec)[:3]
    r = client.post("/v1/models/brick/score", params={"map": "png"}, files=_files(paths))
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["image_name"] for x in results] == [p.name for p in paths]
    session = OnnxDetector(run / "export" / "model.onnx")
    expected, _ = session(torch.stack([load_image(p, SIZE) for p in paths]))
    for res, want in zip(results, expected):
        assert res["score"] == pytest.approx(float(want), rel=1e-5)
        assert res["verdict"] == ("anomalous" if res["score"] > res["threshold"] else "normal")
        assert 0 < res["p_value"] <= 1 and res["latency_ms"] > 0 and len(res["id"]) == 32
        png = Image.open(io.BytesIO(base64.b64decode(res["overlay_png"])))
        assert png.size == (SIZE, SIZE)


def test_server_scores_equal_the_detector_on_the_same_files(run, tiny_mvtec, tmp_path):
    """PyTorch engine: the served score is the Detector's own score of the file."""
    from reconad.detector import Detector

    paths = texture_images(tiny_mvtec)[:2]
    det = Detector.load(run / "model", device="cpu")
    want = det.decision_function([str(p) for p in paths])
    config = ServeConfig(runs=[ServedRun("brick", str(run))], db=f"sqlite:///{tmp_path / 'r.db'}", engine="torch")
    with server_thread(create_app(config)) as url:
        got = [httpx.post(f"{url}/v1/models/brick/score", files=_files([p]), timeout=60).json() for p in paths]
    assert [g["results"][0]["engine"] for g in got] == ["torch", "torch"]
    np.testing.assert_allclose([g["results"][0]["score"] for g in got], want, rtol=1e-5)


def test_raw_map_is_the_anomaly_map_at_model_resolution(server, tiny_mvtec):
    client, _ = server
    r = client.post("/v1/models/brick/score", params={"map": "raw"}, files=_files(texture_images(tiny_mvtec)[:1]))
    amap = np.asarray(r.json()["results"][0]["map"])
    assert amap.shape == (SIZE, SIZE) and np.isfinite(amap).all()
    assert r.json()["results"][0]["overlay_png"] is None


@pytest.mark.parametrize("mode", ["RGB", "L", "I;16", "RGBA", "P", "JPEG"])
def test_uploads_are_preprocessed_exactly_like_files(tmp_path, mode):
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 255, (37, 53, 3), dtype=np.uint8)
    im = Image.fromarray(arr)
    if mode == "L":
        im = im.convert("L")
    elif mode == "I;16":
        im = Image.fromarray(arr[..., 0].astype(np.uint16) * 257)  # 16-bit grayscale
    elif mode in ("RGBA", "P"):
        im = im.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "JPEG" else "x.png")
    im.save(path)
    upload = decode_upload(path.read_bytes(), "x", SIZE, "resize", max_pixels=10**6)
    assert torch.equal(upload.tensor, load_image(path, SIZE))
    assert (upload.width, upload.height) == (53, 37)


def test_results_are_listed_filtered_and_fetched_from_the_database(server, tiny_mvtec):
    client, state = server
    paths = texture_images(tiny_mvtec)
    posted = client.post("/v1/models/brick/score", files=_files(paths)).json()["results"]
    listed = client.get("/v1/results", params={"limit": 1000}).json()["results"]
    ids = {r["id"] for r in listed}
    assert {r["id"] for r in posted} <= ids
    flagged = client.get("/v1/results", params={"verdict": "anomalous", "limit": 1000}).json()["results"]
    assert all(r["verdict"] == "anomalous" for r in flagged)
    assert len(flagged) == sum(r["verdict"] == "anomalous" for r in listed)
    later = client.get("/v1/results", params={"since": "2999-01-01T00:00:00Z"}).json()["results"]
    assert later == []
    assert len(client.get("/v1/results", params={"limit": 2}).json()["results"]) == 2
    one = client.get(f"/v1/results/{posted[0]['id']}").json()
    assert one["score"] == posted[0]["score"] and one["image_sha256"] == posted[0]["image_sha256"]
    assert one["has_overlay"] and Image.open(io.BytesIO(base64.b64decode(one["overlay_png"]))).size == (SIZE, SIZE)
    import hashlib

    assert one["image_sha256"] == hashlib.sha256(paths[0].read_bytes()).hexdigest()
    assert one["image_bytes"] == paths[0].stat().st_size and (one["width"], one["height"]) == (SIZE, SIZE)
    assert client.get("/v1/results/nothere").status_code == 404
    assert client.get("/v1/results", params={"limit": 0}).status_code == 422


def test_health_readiness_and_prometheus_metrics(server, tiny_mvtec):
    client, _ = server
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"ready": True, "models": ["brick"]}
    client.post("/v1/models/brick/score", files=_files(texture_images(tiny_mvtec)[:2]))
    r = client.get("/metrics")
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = r.text
    sample = re.compile(r'^[a-z_]+(\{([a-z_0-9]+="[^"]*",?)*\})? -?[0-9.e+-]+$|^[a-z_]+(\{.*\})? (\+Inf|NaN)$')
    for line in text.splitlines():
        assert line.startswith("# HELP ") or line.startswith("# TYPE ") or sample.match(line), line
    for name in (
        "reconad_http_requests_total",
        "reconad_http_request_seconds_bucket",
        "reconad_queue_depth",
        "reconad_verdicts_total",
        "reconad_batch_size_bucket",
        "reconad_image_latency_seconds_count",
    ):
        assert name in text
    assert re.search(r'reconad_http_requests_total\{route="/v1/models/\{name\}/score",method="POST",status="200"', text)
    assert "# TYPE reconad_http_request_seconds histogram" in text and 'le="+Inf"' in text


def test_the_openapi_description_names_the_routes(server):
    client, _ = server
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/models", "/v1/models/{name}/score", "/v1/results", "/v1/results/{result_id}", "/healthz"} <= set(paths)


# --------------------------------------------------------------- micro-batching


def test_concurrent_requests_share_forward_passes():
    """While one pass runs, the queue fills; the next pass takes up to max_batch of them."""
    seen: list[int] = []
    started, gate = threading.Event(), threading.Event()

    def engine(x):
        seen.append(len(x))
        started.set()
        gate.wait(5)
        return x.reshape(len(x), -1).mean(axis=1), None

    batcher = MicroBatcher(engine, max_batch=4, max_wait_s=0.0, max_queue=16)

    async def main():
        for _ in range(6):
            batcher.reserve(1)
        image = lambda i: np.full((1, 3, 2, 2), i, np.float32)
        tasks = [asyncio.ensure_future(batcher.score(image(0)))]
        await asyncio.to_thread(started.wait, 5)  # the first pass is running...
        tasks += [asyncio.ensure_future(batcher.score(image(i))) for i in range(1, 6)]
        while batcher._queued_images() < 5:  # ...while five more requests queue up
            await asyncio.sleep(0)
        gate.set()
        return await asyncio.gather(*tasks)

    results = asyncio.run(main())
    batcher.close()
    assert seen == [1, 4, 1]
    assert [float(r.scores[0]) for r in results] == [float(i) for i in range(6)]
    assert [r.batch_size for r in results] == [1, 4, 4, 4, 4, 1]
    assert batcher.depth == 0


def test_a_full_queue_refuses_at_once_with_a_retry_time():
    batcher = MicroBatcher(lambda x: (np.zeros(len(x)), None), max_batch=2, max_queue=3)
    batcher.reserve(2)
    batcher.reserve(1)
    with pytest.raises(QueueFull) as info:
        batcher.reserve(1)
    assert info.value.retry_after >= 1
    batcher.release(3)
    batcher.reserve(5)  # a request larger than the queue still runs when the queue is empty
    batcher.close()


def test_an_answered_client_finds_its_room_free_when_it_posts_again():
    """The room is given back before the answer, so a closed loop of max_queue clients is never refused."""
    batcher = MicroBatcher(lambda x: (np.zeros(len(x)), None), max_batch=1, max_queue=1)

    async def main() -> list[int]:
        depths = []
        for _ in range(20):  # a client that posts again the moment it is answered
            batcher.reserve(1)
            await batcher.score(np.zeros((1, 3, 4, 4), dtype=np.float32))
            depths.append(batcher.depth)
        return depths

    depths = asyncio.run(main())
    batcher.close()
    assert depths == [0] * 20


def test_flood_gets_503_with_retry_after_and_every_200_is_recorded(run, tiny_mvtec, tmp_path):
    config = ServeConfig(
        runs=[ServedRun("brick", str(run))], db=f"sqlite:///{tmp_path / 'r.db'}", queue_size=2, threads=1
    )
    app = create_app(config)
    body = texture_images(tiny_mvtec)[0].read_bytes()
    with server_thread(app) as url:
        batcher = app.state.server.batchers["brick"]
        fast, gate = batcher.engine, threading.Event()
        batcher.engine = lambda x: (gate.wait(60), fast(x))[1]  # the model waits until one request was refused

        async def flood():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                files = lambda i: [("images", (f"flood-{i}.png", body, "image/png"))]
                posts = [asyncio.ensure_future(client.post("/v1/models/brick/score", files=files(i))) for i in range(8)]
                # nothing is scored before the gate opens, so the first answer is a refusal
                await asyncio.wait(posts, return_when=asyncio.FIRST_COMPLETED)
                gate.set()
                return await asyncio.gather(*posts)

        responses = asyncio.run(flood())
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 503} and codes.count(503) >= 1 and codes.count(200) >= 2
        assert all(int(r.headers["retry-after"]) >= 1 for r in responses if r.status_code == 503)
        store = app.state.server.store
        assert store.count(image_prefix="flood-") == codes.count(200)
        assert 'reconad_rejected_total{reason="queue_full"' in httpx.get(f"{url}/metrics").text
