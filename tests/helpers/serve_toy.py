"""A served toy model for the server tests that need no trained run: the smallest fitted
autoencoder (16 px, ``helpers.minimal_models``) saved as a run folder, served by PyTorch
behind an API key, on 127.0.0.1 only."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

from helpers.minimal_models import minimal_detector
from reconad.serve.config import ServeConfig, ServedRun

KEY = "toy-server-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
#: the toy model's image size (and the tile size of its tiled configuration)
TOY_SIZE = 16


def toy_config(root: Path, **settings: Any) -> ServeConfig:
    """A run folder and key file under ``root`` (made once), and a config serving it as ``toy``."""
    run, key = root / "run", root / "key"
    if not run.exists():
        minimal_detector("ae").save(run / "model")
        key.write_text(KEY)
        key.chmod(0o600)
    defaults: dict[str, Any] = dict(
        runs=[ServedRun("toy", str(run))],
        db=f"sqlite:///{root / 'results.db'}",
        engine="torch",
        threads=1,
        api_key_file=str(key),
    )
    return ServeConfig(**{**defaults, **settings})


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent), matched on ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def raw_request(url: str, head: bytes, body: bytes = b"") -> socket.socket:
    """Open a connection to ``url`` and send ``head`` (request line and headers, without the
    blank line) and then ``body``; the socket, for the caller to send more or read."""
    host, port = re.match(r"http://([^:]+):(\d+)", url).groups()  # type: ignore[union-attr]
    sock = socket.create_connection((host, int(port)), timeout=60)
    sock.sendall(head + b"\r\n\r\n" + body)
    return sock


def read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def multipart(name: str, data: bytes, boundary: str = "reconadtestboundary") -> tuple[bytes, bytes]:
    """(Content-Type header value, body) of a one-file ``images`` upload."""
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="images"; filename="{name}"\r\n'
            "Content-Type: image/png\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return f"multipart/form-data; boundary={boundary}".encode(), body
