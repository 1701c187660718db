"""``reconad serve``: an inspection service over trained runs.

A REST API (FastAPI + uvicorn) that scores posted images with micro-batching and a
bounded queue, records every result in a database (SQLAlchemy: SQLite by default,
PostgreSQL tested), answers health, readiness and Prometheus metrics, and serves an
offline web page to drop images on.  Modules, one job each:

| module | job |
|---|---|
| ``config`` | ``ServeConfig``: every setting, passed unchanged to worker processes |
| ``engines`` | loading a run; ONNX Runtime (export checked against the model's SHA-256) or PyTorch |
| ``decode`` | uploaded bytes to the model input, with the pixel limit |
| ``batcher`` | micro-batching with a bounded queue (503 + Retry-After when full) |
| ``store`` | the results database: schema, migration, queries |
| ``review_store`` | the audit sample, reviews and calibration versions in that database |
| ``audit`` | the seeded audit draw, a served model under another calibration, reviewed defects' files |
| ``recalibration`` | threshold and p-values from reviewed audit normals; the false-alarm rate's band |
| ``review_routes`` | review, audit queue, false-alarm rate, recalibrate, calibration versions |
| ``security`` | API key (constant-time) and request-body limit, as ASGI middleware |
| ``metrics`` / ``middleware`` | Prometheus text with bounded labels, request counting, the body deadline |
| ``connections`` | uvicorn's HTTP protocol with a deadline for a request's headers |
| ``schemas`` | the contract: answer bodies and the status codes each route documents (OpenAPI) |
| ``app`` | the routes and the server's start and stop |
| ``server`` | checks before binding, then uvicorn |

The optional dependencies come with ``pip install 'reconad[serve]'``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ServeConfig", "create_app", "serve", "preflight"]


def __getattr__(name: str) -> Any:
    # FastAPI and SQLAlchemy are imported only when the server is used.
    if name == "ServeConfig":
        from reconad.serve.config import ServeConfig

        return ServeConfig
    if name == "create_app":
        from reconad.serve.app import create_app

        return create_app
    if name in ("serve", "preflight"):
        from reconad.serve import server

        return getattr(server, name)
    raise AttributeError(name)
