"""Request counting and timing for /metrics, as plain ASGI middleware (outermost, so refused
requests are counted too)."""

from __future__ import annotations

import time
from typing import Any

from reconad.serve.metrics import Metrics, route_label
from reconad.serve.security import ASGIApp, Message, Receive, Scope, Send

__all__ = ["RequestMetrics"]


class RequestMetrics:
    """``reconad_http_requests_total{route,method,status}`` and ``reconad_http_request_seconds{route}``."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

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

        try:
            await self.app(scope, receive, tracked)
        finally:
            route: Any = route_label(scope["path"])
            labels = (("route", route), ("method", scope["method"]), ("status", str(status)))
            self.metrics.inc("reconad_http_requests_total", labels)
            self.metrics.observe("reconad_http_request_seconds", time.perf_counter() - start, (("route", route),))
