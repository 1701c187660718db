"""API key and request-size limits, as plain ASGI middleware: they answer before the app
reads a body, so a refused request costs no parsing, reaches no model and no database.

* API key (optional): ``Authorization: Bearer <key>`` compared in constant time on every
  route but the probes ``/healthz`` and ``/readyz`` (a liveness or readiness probe carries
  no key; they say up / loaded and the served models' names, nothing scored) and the web
  page's own files (``/`` and ``/static/``: they hold no data, and a browser cannot send a
  header when it opens a page; the page asks for the key and sends it with every API
  call).  Without a valid key: 401, nothing recorded.
* Body limit: a declared ``Content-Length`` over the limit is refused at once (413); a
  body sent without one is counted as it streams and refused when it passes the limit.
"""

from __future__ import annotations

import hmac
import json
import os
import stat
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

from reconad.errors import ConfigError

__all__ = ["BodyLimit", "BearerAuth", "read_api_key", "PUBLIC_PATHS"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: paths answered without the key (prefixes end with "/")
PUBLIC_PATHS = ("/healthz", "/readyz", "/", "/static/")


def read_api_key(path: str | os.PathLike) -> str:
    """The key in ``path`` (surrounding whitespace stripped); refuses an empty or missing file."""
    p = Path(path)
    try:
        key = p.read_text(encoding="utf-8").strip()
        mode = p.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--api-key-file {p}: cannot read it ({exc})") from None
    if not key or any(c.isspace() for c in key):
        raise ConfigError(
            f"--api-key-file {p}: the file must hold one key (no spaces), it holds {'nothing' if not key else 'spaces'}"
        )
    if len(key) < 16:
        raise ConfigError(f"--api-key-file {p}: the key is {len(key)} characters; use at least 16")
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        import logging

        logging.getLogger("reconad.serve").warning("%s is readable by other users: chmod 600 it", p)
    return key


async def _reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


def _is_public(path: str) -> bool:
    return any(path == p or (p.endswith("/") and p != "/" and path.startswith(p)) for p in PUBLIC_PATHS)


class BearerAuth:
    """401 unless ``Authorization: Bearer <key>`` matches (constant-time comparison)."""

    def __init__(self, app: ASGIApp, key: str, on_reject: Callable[[], None] | None = None) -> None:
        self.app, self.key, self.on_reject = app, key.encode("utf-8"), on_reject

    def authorised(self, scope: Scope) -> bool:
        given = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                if scheme.lower() == b"bearer":
                    given = token.strip()
                break
        return hmac.compare_digest(given, self.key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _is_public(scope["path"]) or self.authorised(scope):
            await self.app(scope, receive, send)
            return
        if self.on_reject is not None:
            self.on_reject()
        await _reply(send, 401, "missing or invalid API key", [(b"www-authenticate", b'Bearer realm="reconad"')])


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for a request body over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reply(send, 400, "invalid Content-Length")
                    return
                if declared > self.max_bytes:
                    await _reply(send, 413, f"request body of {declared} bytes is over the limit of {self.max_bytes}")
                    return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A body without a (truthful) Content-Length: count it as it streams."""
        seen, exceeded, answered = 0, False, False

        async def counted_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    exceeded = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            # The app may turn the failed read into its own error response: answer 413 instead.
            nonlocal answered
            if not exceeded:
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await _reply(send, 413, f"request body is over the limit of {self.max_bytes} bytes")

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            if not answered:
                await _reply(send, 413, f"request body is over the limit of {self.max_bytes} bytes")
