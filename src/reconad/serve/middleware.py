"""Plain ASGI middleware: request counting and timing for /metrics (outermost, so refused
requests are counted too), and the deadline for a request body to arrive."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import anyio

from reconad.serve.metrics import Metrics, method_label, route_label, status_label
from reconad.serve.security import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestMetrics", "BodyDeadline"]


class RequestMetrics:
    """``reconad_http_requests_total{route,method,status}``, ``reconad_http_request_seconds{route}``
    and ``reconad_http_requests_in_flight``.

    Every label comes from a fixed set (a route template, a known method or "other", a known
    status or its class), so no request, authorised or not, can add a series."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics
        self.in_flight = 0
        metrics.describe("reconad_http_requests_in_flight", "gauge", "HTTP requests received and not yet answered")
        metrics.gauge("reconad_http_requests_in_flight", lambda: {(): float(self.in_flight)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def tracked(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        self.in_flight += 1
        try:
            await self.app(scope, receive, tracked)
        finally:
            self.in_flight -= 1
            route: Any = route_label(scope["path"])
            labels = (("route", route), ("method", method_label(scope["method"])), ("status", status_label(status)))
            self.metrics.inc("reconad_http_requests_total", labels)
            self.metrics.observe("reconad_http_request_seconds", time.perf_counter() - start, (("route", route),))


class _SlowBody(Exception):
    pass


class BodyDeadline:
    """408 when a request's body has not fully arrived ``seconds`` after its headers.

    uvicorn bounds the wait between requests (keep-alive), not a body that trickles in or
    never comes: that would hold a connection, and its slot under --max-connections, for
    ever.  The deadline lies in the receive path, so whatever reads the body (the multipart
    parser) is stopped there; the answer says so in one line and closes the connection."""

    def __init__(self, app: ASGIApp, seconds: float, on_timeout: Callable[[], None] | None = None) -> None:
        self.app, self.seconds, self.on_timeout = app, seconds, on_timeout

    async def _refuse(self, send: Send) -> None:
        if self.on_timeout is not None:
            self.on_timeout()
        body = json.dumps({"detail": f"the request body did not arrive within {self.seconds:g} s"}).encode()
        head = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 408, "headers": [*head, (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = anyio.current_time() + self.seconds
        complete = timed_out = answered = False

        async def receive_by_deadline() -> Message:
            nonlocal complete, timed_out
            if complete:  # after the body: waiting for a disconnect is not bounded here
                return await receive()
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                raise _SlowBody() from None
            complete = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def guarded_send(message: Message) -> None:
            # The app may turn the failed read into an error of its own: answer 408 instead.
            nonlocal answered
            if not timed_out:
                await send(message)
            elif message["type"] == "http.response.start" and not answered:
                answered = True
                await self._refuse(send)

        try:
            await self.app(scope, receive_by_deadline, guarded_send)
        except _SlowBody:
            if not answered:
                await self._refuse(send)
