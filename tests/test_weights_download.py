"""`reconad weights download`: a real HTTP server on 127.0.0.1 serves fixture checkpoints.

The pinned table is replaced by one naming the fixture's own digest; nothing here
touches the network beyond the loopback interface.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reconad import Detector
from reconad.backbones import build_backbone, download
from reconad.backbones.resnet import ResNet
from reconad.cli import main
from reconad.errors import ConfigError

pytestmark = pytest.mark.usefixtures("single_thread")


class _Handler(http.server.BaseHTTPRequestHandler):
    """GET /NAME serves ``files[NAME]``; ``short[NAME]`` bytes fewer than Content-Length says."""

    files: dict[str, bytes] = {}
    short: dict[str, int] = {}

    def do_GET(self) -> None:
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) - self.short.get(self.path.lstrip("/"), 0)])
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"files": {}, "short": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("RECONAD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "weights"


def _pin(monkeypatch: pytest.MonkeyPatch, name: str, data: bytes) -> str:
    """Pin ``name`` to the SHA-256 of ``data`` (the fixture) instead of torchvision's file."""
    digest = hashlib.sha256(data).hexdigest()
    table = dict(download.TORCHVISION_WEIGHTS)
    table[name] = replace(table[name], sha256=digest)
    monkeypatch.setattr(download, "TORCHVISION_WEIGHTS", table)
    return digest


def _saved(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(argv))
    return rc, out.getvalue(), err.getvalue()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_pinned_digests_are_full_and_match_the_file_names() -> None:
    for name, pinned in download.TORCHVISION_WEIGHTS.items():
        assert re.fullmatch(r"[0-9a-f]{64}", pinned.sha256), name
        prefix = re.fullmatch(rf"{name}-([0-9a-f]{{8}})\.pth", pinned.file_name)
        assert prefix and pinned.sha256.startswith(prefix.group(1)), name
        assert pinned.url.startswith("https://download.pytorch.org/models/")
        assert "IMAGENET1K_V1" in pinned.release


def test_download_converts_and_backbone_finds_it(server, cache, monkeypatch, tiny_mvtec, tmp_path) -> None:
    url, handler = server
    torch.manual_seed(0)
    state = {k: v.clone() for k, v in ResNet("resnet18").state_dict().items()}
    data = _saved(state)
    handler.files["r18.pth"] = data
    digest = _pin(monkeypatch, "resnet18", data)
    with pytest.raises(ConfigError, match="reconad weights download resnet18"):
        build_backbone("resnet18")  # nothing cached yet

    rc, out, err = _cli("weights", "download", "resnet18", "--url", f"{url}/r18.pth", "--quiet")
    assert (rc, err) == (0, "")
    target = cache / "resnet18.safetensors"
    assert str(target) in out
    assert sorted(p.name for p in cache.iterdir()) == ["resnet18.json", "resnet18.safetensors"]
    cached = load_file(str(target))
    assert cached.keys() == state.keys()
    assert all(torch.equal(cached[k], state[k]) for k in state)
    record = json.loads((cache / "resnet18.json").read_text())
    assert record["source_sha256"] == digest and record["source_url"] == f"{url}/r18.pth"
    assert record["sha256"] == download.file_sha256(target) and record["torch"] == torch.__version__

    x = torch.rand(1, 3, 64, 64)
    (tmp_path / "ref.pth").write_bytes(data)
    reference = build_backbone("resnet18", weights=tmp_path / "ref.pth")  # the path users give today
    assert all(torch.equal(a, b) for a, b in zip(build_backbone("resnet18")(x), reference(x)))

    rc, out, _ = _cli("weights", "download", "resnet18", "--url", f"{url}/missing.pth")
    assert rc == 0 and "already cached" in out  # no request without --force
    rc, _, err = _cli("weights", "download", "resnet18", "--url", f"{url}/missing.pth", "--force", "--quiet")
    assert rc == 2 and "HTTP 404" in _one_error_line(err)
    assert load_file(str(target)).keys() == state.keys()  # a failed --force keeps the cached file
    rc, out, _ = _cli("weights", "list")
    assert rc == 0 and "resnet18" in out and record["sha256"][:16] in out

    run = tmp_path / "run"
    train = ["train", "--dataset", "mvtec", "--root", str(tiny_mvtec), "--category", "brick", "--out", str(run)]
    rc, _, err = _cli(*train, "--image-size", "64", "--epochs", "1", "--quiet", "--backbone", "resnet18")
    assert rc == 0, err
    encoder = Detector.load(run / "model").model_.encoder
    assert all(torch.equal(a, b) for a, b in zip(encoder(x), reference(x)))


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reconad: error: ") and "Traceback" not in err, err
    return lines[0]


def test_wrong_hash_deletes_the_file(server, cache, monkeypatch) -> None:
    url, handler = server
    handler.files["w.pth"] = _saved({"w": torch.ones(3)})
    pinned = download.TORCHVISION_WEIGHTS["wide_resnet50_2"].sha256
    rc, _, err = _cli("weights", "download", "wide_resnet50_2", "--url", f"{url}/w.pth", "--quiet")
    line = _one_error_line(err)
    actual = hashlib.sha256(handler.files["w.pth"]).hexdigest()
    assert rc == 2 and "wide_resnet50_2" in line and pinned in line and actual in line
    assert list(cache.iterdir()) == []  # the download is gone, nothing cached


def test_truncated_download(server, cache, monkeypatch) -> None:
    url, handler = server
    data = _saved({"w": torch.ones(1000)})
    handler.files["t.pth"], handler.short["t.pth"] = data, 100
    _pin(monkeypatch, "resnet50", data)
    rc, _, err = _cli("weights", "download", "resnet50", "--url", f"{url}/t.pth", "--quiet")
    line = _one_error_line(err)
    assert rc == 2 and "truncated" in line and f"{len(data) - 100} of {len(data)} bytes" in line
    assert list(cache.iterdir()) == []


def test_no_network_http_error_and_unknown_name(server, cache) -> None:
    url, _ = server
    dead = f"http://127.0.0.1:{_closed_port()}/r.pth"
    rc, _, err = _cli("weights", "download", "resnet18", "--url", dead, "--quiet")
    line = _one_error_line(err)
    assert rc == 2 and dead in line and "refused" in line.lower() and "optional" in line
    rc, _, err = _cli("weights", "download", "resnet18", "--url", f"{url}/nothing.pth", "--quiet")
    line = _one_error_line(err)
    assert rc == 2 and "HTTP 404" in line and "optional" in line
    rc, _, err = _cli("weights", "download", "resnet34")
    line = _one_error_line(err)
    assert rc == 2 and "resnet18, resnet50, wide_resnet50_2" in line
    assert not cache.exists() or list(cache.iterdir()) == []


def test_unwritable_cache(tmp_path, monkeypatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("RECONAD_CACHE", str(blocker))
    rc, _, err = _cli("weights", "download", "resnet18", "--url", "http://127.0.0.1:9/never", "--quiet")
    line = _one_error_line(err)
    assert rc == 2 and str(blocker / "weights") in line and "RECONAD_CACHE" in line


def test_cache_location_follows_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("RECONAD_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.weights_cache() == tmp_path / "xdg" / "reconad" / "weights"
    monkeypatch.setenv("RECONAD_CACHE", str(tmp_path / "rc"))
    assert download.weights_cache() == tmp_path / "rc" / "weights"
    rc, out, _ = _cli("weights", "list")
    assert rc == 0 and "(empty)" in out


def test_a_file_that_does_not_fit_the_model_is_not_cached(server, cache, monkeypatch) -> None:
    url, handler = server
    handler.files["small.pth"] = data = _saved({"conv1.weight": torch.ones(2, 3, 1, 1)})
    _pin(monkeypatch, "resnet50", data)  # the digest matches, the content is not a ResNet-50
    rc, _, err = _cli("weights", "download", "resnet50", "--url", f"{url}/small.pth", "--quiet")
    line = _one_error_line(err)
    assert rc == 2 and "resnet50" in line and "do not fit ResNet" in line
    assert list(cache.iterdir()) == []
