"""What bounds ``reconad serve`` against a careless or hostile client: /metrics series after
requests with invented methods, the cost of one large upload to a tiled run, and how long a
body that never arrives holds its connection.

Usage (from the project root, in the project's venv; one torch thread):

    OMP_NUM_THREADS=1 python benchmarks/serve_limits.py '{"side": 2000, "out": "runs/bench-serve-limits"}'

A 64-px autoencoder (default options, one epoch on 16 random images) is saved as a run
and served on 127.0.0.1 by PyTorch with an API key, scored by 64-px tiles overlapping by
8.  Settings the reconad under test does not have are left out, so the same script
measures an older tree (``PYTHONPATH=OLD/src``) as the baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

KEY = "benchmark-key-0123456789abcdef"


def _server(app: Any) -> tuple[Any, str]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server, f"http://127.0.0.1:{port}"


def _config(root: Path, **settings: Any) -> Any:
    from reconad.serve.config import ServeConfig, ServedRun

    known = {f.name for f in dataclasses.fields(ServeConfig)}
    base = dict(runs=[ServedRun("m", str(root / "run"))], db=f"sqlite:///{root / 'r.db'}", engine="torch")
    base.update(threads=1, api_key_file=str(root / "key"), tile_size=64, tile_overlap=8)
    return ServeConfig(**base, **{k: v for k, v in settings.items() if k in known})


def _series(url: str) -> int:
    import httpx

    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    return sum(1 for line in text.splitlines() if not line.startswith("#"))


def _slow_body(url: str, wait_s: float) -> dict[str, Any]:
    """Send headers and half a body; seconds until the server answers or closes (None: still open)."""
    host, port = url[7:].split(":")
    sock = socket.create_connection((host, int(port)), timeout=wait_s)
    head = f"POST /v1/models/m/score HTTP/1.1\r\nHost: b\r\nAuthorization: Bearer {KEY}\r\n"
    head += "Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 1000\r\n\r\n--b\r\n"
    t0 = time.perf_counter()
    sock.sendall(head.encode())
    try:
        first = sock.recv(100)
        return {"seconds_held": round(time.perf_counter() - t0, 2), "answer": first.split(b"\r\n")[0].decode()}
    except TimeoutError:
        return {"seconds_held": None, "answer": f"none within {wait_s:g} s"}
    finally:
        sock.close()


def main(settings: dict[str, Any]) -> dict[str, Any]:
    import httpx

    from reconad.detector import Detector
    from reconad.serve.app import create_app

    torch.set_num_threads(1)
    root = Path(settings.get("out", "runs/bench-serve-limits"))
    root.mkdir(parents=True, exist_ok=True)
    if not (root / "run").exists():
        det = Detector("ae", image_size=64, epochs=1, batch_size=8, progress=False, device="cpu", patience=None)
        det.fit(np.random.default_rng(0).random((16, 64, 64, 3)).astype(np.float32))
        det.save(root / "run" / "model")
    (root / "key").write_text(KEY)
    (root / "key").chmod(0o600)
    side = int(settings.get("side", 2000))
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    out: dict[str, Any] = {"side": side, "upload_bytes": buf.tell()}
    server, url = _server(create_app(_config(root, body_timeout_s=settings.get("body_timeout_s", 30.0))))
    try:
        out["metrics_series_before"] = _series(url)
        for i in range(200):
            httpx.request(f"M{i}", f"{url}/v1/models")
        out["metrics_series_after_200_invented_methods"] = _series(url)
        files = [("images", ("big.png", buf.getvalue()))]
        t0 = time.perf_counter()
        r = httpx.post(f"{url}/v1/models/m/score", files=files, headers={"Authorization": f"Bearer {KEY}"}, timeout=600)
        out["large_upload"] = {"status": r.status_code, "seconds": round(time.perf_counter() - t0, 2)}
        out["large_upload"]["detail"] = r.json().get("detail") if r.status_code != 200 else None
        out["slow_body"] = _slow_body(url, float(settings.get("slow_wait_s", 45.0)))
    finally:
        server.should_exit = True
    (root / "results.json").write_text(json.dumps(out, indent=2))
    return out


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    ap.add_argument("spec", nargs="?", type=json.loads, default={}, help="settings, a JSON object (see the docstring)")
    return ap


if __name__ == "__main__":
    print(json.dumps(main(parser().parse_args().spec), indent=2))
