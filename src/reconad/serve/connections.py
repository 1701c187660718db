"""A deadline for a request's headers, below ASGI: uvicorn's HTTP protocol with one timer more.

uvicorn closes a connection that stays idle *between* requests (``timeout_keep_alive``),
but one that opens and never finishes its request line and headers is held until the
client goes, each such connection taking one of ``--max-connections`` slots.  This
protocol closes a connection on which no request has begun ``HEADER_TIMEOUT_ENV`` seconds
after it opened or after its last answer (the body's own deadline is ASGI middleware:
``reconad.serve.middleware.BodyDeadline``).  The setting travels in the environment so
that worker processes, which import this class afresh, read the same value.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["HeaderDeadlineProtocol", "HEADER_TIMEOUT_ENV"]

#: seconds a connection may take to send a request's headers (``reconad serve --body-timeout-s``)
HEADER_TIMEOUT_ENV = "RECONAD_SERVE_HEADER_TIMEOUT_S"


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose next request does not begin in time."""

    _deadline: asyncio.TimerHandle | None = None
    _armed_for: Any = None

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._armed_for = self.cycle  # the request in progress when armed (None, or one answered)
        seconds = float(os.environ.get(HEADER_TIMEOUT_ENV, "30"))
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if self.cycle is self._armed_for and not self.transport.is_closing():  # no request began since
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn narrows asyncio's BaseTransport
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)
