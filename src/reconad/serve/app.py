"""The FastAPI application: routes, the server's state, and its start and stop.

``create_app(config)`` builds the app; uvicorn runs it (``reconad.serve.server``).  On
start it opens (and creates or migrates) the results database, loads every run,
warms each engine up and starts one micro-batcher per model; ``/readyz`` says ready
only after that.  On stop (SIGTERM: uvicorn first lets in-flight requests finish) the
batchers drain and the database is closed.
"""

from __future__ import annotations

import base64
import logging
import os
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from reconad.calibration import finite_scores
from reconad.errors import ScoringError
from reconad.inference import Tiler
from reconad.serve.audit import AuditSampler, with_calibration
from reconad.serve.batcher import BatchResult, MicroBatcher, QueueFull
from reconad.serve.config import NAME_PATTERN, ServeConfig
from reconad.serve.decode import BadImage, Upload, decode_upload
from reconad.serve.engines import ServedModel, load_served_model, overlay_png
from reconad.serve.metrics import BATCH_BUCKETS, Metrics
from reconad.serve.middleware import BodyDeadline, RequestMetrics
from reconad.serve.review_routes import active_model, review_routes, review_rows
from reconad.serve.review_store import ReviewStore
from reconad.serve.schemas import (
    Health,
    ModelList,
    Ready,
    ResultList,
    ScoreAnswer,
    StoredResultWithOverlay,
    document_api_key,
    iso_time,
    responses,
)
from reconad.serve.security import PUBLIC_PATHS, BearerAuth, BodyLimit, read_api_key
from reconad.serve.store import ResultRow, ResultStore, utc_now
from reconad.serve.stream_routes import stream_routes
from reconad.serve.streams import StreamModel, is_frame_run, load_stream_model
from reconad.tiling import TileGrid

__all__ = ["ServerState", "create_app", "app_from_env"]

log = logging.getLogger("reconad.serve")
STATIC = Path(__file__).parent / "static"
#: the web page may load nothing from anywhere else (it must work offline)
PAGE_POLICY = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'"


@dataclass
class ServerState:
    """What the routes share: the config, the models and their batchers, the store, the metrics."""

    config: ServeConfig
    models: dict[str, ServedModel] = field(default_factory=dict)
    batchers: dict[str, MicroBatcher] = field(default_factory=dict)
    store: ResultStore | None = None
    metrics: Metrics = field(default_factory=Metrics)
    ready: bool = False
    decode_slots: Any = None
    #: the audit sample's draw, the reviews and calibrations, and each model with the run's own calibration
    sampler: AuditSampler = field(default_factory=lambda: AuditSampler(0.0, 0))
    reviews: ReviewStore | None = None
    own_models: dict[str, ServedModel] = field(default_factory=dict)
    #: frame models that score video streams (reconad.serve.streams), by name
    streams: dict[str, StreamModel] = field(default_factory=dict)

    def start(self, preloaded: dict[str, ServedModel] | None = None) -> None:
        """Database, models, warm-up, batchers (blocking; runs in a thread at startup)."""
        cfg = self.config
        self.store = ResultStore(cfg.db_url)
        self.store.prepare()
        self.reviews = ReviewStore(self.store.engine)
        self.sampler = _sampler(cfg)
        threads = cfg.inference_threads()
        for run in cfg.runs:
            if run.name not in (preloaded or {}) and is_frame_run(run.path):
                self.streams[run.name] = load_stream_model(run, cfg.workers, threads)
                continue
            model = (preloaded or {}).get(run.name) or load_served_model(
                run, cfg.engine, threads, (cfg.tile_size, cfg.tile_overlap)
            )
            model.warm_up(cfg.max_batch)
            self.own_models[run.name] = self.models[run.name] = with_calibration(model, None, 0)
            active_model(self, run.name)  # the newest calibration version stored for it
            self.batchers[run.name] = MicroBatcher(
                model.engine,
                max_batch=cfg.max_batch,
                max_wait_s=cfg.batch_wait_ms / 1000.0,
                max_queue=cfg.queue_size,
                name=run.name,
                on_batch=self._batch_observer(run.name),
            )
        self.ready = True
        served = [f"{m.name} ({m.engine.name})" for m in self.models.values()]
        log.info("ready: %s", ", ".join(served + [f"{name} (video streams)" for name in self.streams]))

    def _batch_observer(self, name: str) -> Any:
        def observe(n: int, _seconds: float) -> None:
            self.metrics.observe("reconad_batch_size", n, (("model", name),), BATCH_BUCKETS)

        return observe

    def stop(self) -> None:
        self.ready = False
        for batcher in self.batchers.values():
            batcher.close()
        if self.store is not None:
            self.store.close()


def _sampler(cfg: ServeConfig) -> AuditSampler:
    seed = cfg.audit_seed
    if cfg.audit_share > 0 and seed is None:
        import secrets

        seed = secrets.randbits(32)
    if cfg.audit_share > 0:
        log.info("audit sample: %g of scored images, seed %d (--audit-seed repeats it)", cfg.audit_share, seed)
    return AuditSampler(cfg.audit_share, seed)


# ------------------------------------------------------------------ scoring


def _safe_name(filename: str | None, index: int) -> str:
    """The client's image name, without any folder part or control characters, at most 255 long."""
    name = os.path.basename((filename or "").replace("\\", "/"))
    name = "".join(c for c in name if c.isprintable())[:255]
    return name or f"image-{index}"


class TooMuchWork(Exception):
    """A request that would cost more than --max-tiles forward passes of a tile (413)."""


def _decode_all(model: ServedModel, files: list[tuple[str, bytes]], max_pixels: int, max_tiles: int) -> list[Upload]:
    """Decode every upload; for a tiled model, stop at the first one that takes the request's
    tiles over ``max_tiles`` (its work grows with the pixels, not with the number of images)."""
    uploads, tiles = [], 0
    for name, data in files:
        upload = decode_upload(data, name, model.decode_size, model.resize_mode, max_pixels)
        if model.tiling is not None:
            tiler = model.tiling
            tiles += len(TileGrid(upload.height, upload.width, tiler.tile, tiler.overlap))
            if tiles > max_tiles:
                raise TooMuchWork(
                    f"{name}: this request needs over {max_tiles} tiles of {tiler.tile}x{tiler.tile} px "
                    f"({tiles} so far) and --max-tiles is {max_tiles}: send fewer or smaller images"
                )
        uploads.append(upload)
    return uploads


async def _admit_and_decode(state: ServerState, model: ServedModel, images: list[UploadFile]) -> list[Upload]:
    """Reserve room in the model's queue (503 when full), then decode every upload (400 on a bad one).

    The request's validation has checked that there are 1 to ``max_images`` uploads (422 otherwise)."""
    cfg = state.config
    batcher = state.batchers[model.name]
    try:
        batcher.reserve(len(images))
    except QueueFull as full:
        state.metrics.inc("reconad_rejected_total", (("reason", "queue_full"),))
        raise HTTPException(
            503, "the scoring queue is full; retry later", headers={"Retry-After": str(full.retry_after)}
        ) from None
    try:
        files = [(_safe_name(f.filename, i), await f.read()) for i, f in enumerate(images)]
        return await run_in_threadpool_limited(state, _decode_all, model, files, cfg.max_pixels, cfg.max_tiles)
    except BadImage as exc:
        batcher.release(len(images))
        state.metrics.inc("reconad_rejected_total", (("reason", "bad_image"),))
        raise HTTPException(400, str(exc)) from None
    except TooMuchWork as exc:
        batcher.release(len(images))
        state.metrics.inc("reconad_rejected_total", (("reason", "too_many_tiles"),))
        raise HTTPException(413, str(exc)) from None
    except BaseException:
        batcher.release(len(images))
        raise


async def run_in_threadpool_limited(state: ServerState, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` in a worker thread, at most one per inference thread at a time (bounds memory)."""
    import anyio.to_thread

    return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=state.decode_slots)


def _rows(
    model: ServedModel, uploads: list[Upload], result: BatchResult, latency_ms: float, overlays: list[bytes | None]
) -> list[ResultRow]:
    try:  # a model that gives NaN on a decoded (so finite) image is a fault, never "normal"
        finite_scores(result.scores, [u.name for u in uploads], f" from model {model.name!r}")
    except ScoringError as exc:
        raise HTTPException(500, str(exc)) from None
    p_values = model.p_values(result.scores)
    now = utc_now()
    rows = []
    for u, s, p, png in zip(uploads, result.scores, p_values, overlays):
        score = float(s)
        rows.append(
            ResultRow(
                id=uuid.uuid4().hex,
                created_at=now,
                model_name=model.name,
                model_sha256=model.sha256,
                engine=model.engine.name,
                image_name=u.name,
                image_sha256=u.sha256,
                image_bytes=u.n_bytes,
                width=u.width,
                height=u.height,
                score=score,
                p_value=None if np.isnan(p) else float(p),
                verdict=model.verdict(score),
                threshold=model.threshold,
                latency_ms=latency_ms,
                overlay_png=png,
            )
        )
    return rows


def _overlays(
    state: ServerState, model: ServedModel, uploads: list[Upload], result: BatchResult, want_png: bool
) -> tuple[list[bytes | None], list[bytes | None]]:
    """(overlays to answer with, overlays to store): rendered only where asked for or kept."""
    policy, cap = state.config.keep_overlays, state.config.overlay_cap_bytes
    shown: list[bytes | None] = []
    kept: list[bytes | None] = []
    for i, u in enumerate(uploads):
        flagged = model.verdict(float(result.scores[i])) == "anomalous"
        keep = policy == "all" or (policy == "flagged" and flagged)
        png = None
        if result.maps is not None and (want_png or keep):
            png = overlay_png(model, u.tensor, result.maps[i])
        shown.append(png if want_png else None)
        kept.append(png if keep and png is not None and len(png) <= cap else None)
    return shown, kept


def _answer(
    model: ServedModel, row: ResultRow, result: BatchResult, i: int, png: bytes | None, raw: bool, audit: bool
) -> dict:
    out = row.to_dict()
    out.update(
        threshold_basis=model.info.get("threshold_basis"),
        audit=audit,
        batch_size=result.batch_size,
        overlay_png=None if png is None else base64.b64encode(png).decode("ascii"),
    )
    if raw:
        out["map"] = None if result.maps is None else np.round(result.maps[i].astype(np.float64), 6).tolist()
    return out


def _cut_all(uploads: list[Upload], tiler: Tiler) -> tuple[np.ndarray, list[Any]]:
    return tiler.cut([u.tensor for u in uploads])


def _stitch_all(res: BatchResult, grids: list[Any], tiler: Tiler) -> BatchResult:
    if not isinstance(res.maps, np.ndarray):  # the forward pass's (T, h, w) tile maps, or None
        raise HTTPException(500, "the model gave no anomaly maps, which tiled scoring needs")
    scores, maps = tiler.stitch(res.scores, res.maps, grids)
    return BatchResult(scores, maps, res.batch_size, res.queued_s)


async def _score_by_tiles(batcher: MicroBatcher, tiler: Tiler, uploads: list[Upload]) -> BatchResult:
    """A tiled model: every upload's tiles in one job (holding the uploads' queue room),
    the maps stitched per image (reconad.inference.Tiler); maps then differ in size per image."""
    tiles, grids = await run_in_threadpool(_cut_all, uploads, tiler)
    res = await batcher.score(tiles, reserved=len(uploads))
    return await run_in_threadpool(_stitch_all, res, grids, tiler)


async def score_images(state: ServerState, name: str, images: list[UploadFile], map_kind: str | None) -> dict:
    """Admit, decode, score (micro-batched), record, answer: the POST /v1/models/{name}/score route."""
    t0 = time.perf_counter()
    if name not in state.models:
        raise HTTPException(404, f"unknown model {name!r}; served: {', '.join(sorted(state.models)) or 'none'}")
    model = await run_in_threadpool(active_model, state, name)  # a newer calibration version, if any
    uploads = await _admit_and_decode(state, model, images)
    if model.tiling is not None:
        result = await _score_by_tiles(state.batchers[name], model.tiling, uploads)
    else:
        result = await state.batchers[name].score(np.stack([u.tensor.numpy() for u in uploads]))
    latency_ms = (time.perf_counter() - t0) * 1000.0
    shown, kept = await run_in_threadpool(_overlays, state, model, uploads, result, map_kind == "png")
    rows = _rows(model, uploads, result, latency_ms, kept)
    audit = state.sampler.draw(len(rows))  # in the event loop: one seeded stream, in request order
    assert state.store is not None
    set_aside = review_rows(state, model, rows, uploads, audit)
    await run_in_threadpool(state.store.add, rows, set_aside)  # before answering: a 200 means it is recorded
    for row, drawn in zip(rows, audit):
        state.metrics.inc("reconad_images_scored_total", (("model", name),))
        if drawn:
            state.metrics.inc("reconad_audited_total", (("model", name),))
        state.metrics.inc("reconad_verdicts_total", (("model", name), ("verdict", str(row.verdict))))
        state.metrics.observe("reconad_image_latency_seconds", latency_ms / 1000.0, (("model", name),))
    answers = [_answer(model, r, result, i, shown[i], map_kind == "raw", audit[i]) for i, r in enumerate(rows)]
    return {"model": name, "results": answers}


# ------------------------------------------------------------------ the app


def _register_gauges(state: ServerState) -> None:
    m = state.metrics
    m.describe("reconad_http_requests_total", "counter", "HTTP requests by route, method and status")
    m.describe("reconad_http_request_seconds", "histogram", "HTTP request duration by route")
    m.describe("reconad_image_latency_seconds", "histogram", "per-image latency: decode, queue and inference")
    m.describe("reconad_batch_size", "histogram", "images per forward pass")
    m.describe("reconad_images_scored_total", "counter", "images scored and recorded")
    m.describe("reconad_verdicts_total", "counter", "verdicts at the model's threshold")
    m.describe("reconad_audited_total", "counter", "scored images drawn into the audit sample")
    m.describe("reconad_rejected_total", "counter", "requests refused before scoring, by reason")
    m.describe("reconad_queue_depth", "gauge", "images admitted and not yet scored")
    m.describe("reconad_ready", "gauge", "1 when every model is loaded and warm")
    m.describe("reconad_model_info", "gauge", "served models (value 1)")
    m.gauge("reconad_queue_depth", lambda: {(("model", k),): b.depth for k, b in state.batchers.items()})
    m.gauge("reconad_ready", lambda: {(): 1.0 if state.ready else 0.0})
    m.gauge(
        "reconad_model_info",
        lambda: {(("model", k), ("engine", v.engine.name), ("sha256", v.sha256)): 1.0 for k, v in state.models.items()},
    )


def _results_routes(app: FastAPI, state: ServerState) -> None:
    @app.get(
        "/v1/results",
        summary="recent results from the database, newest first",
        response_model=None,
        responses={200: {"model": ResultList}, **responses(400, 413)},
    )
    async def list_results(
        since: Annotated[
            datetime | None,
            iso_time,
            Query(description="ISO 8601 time, e.g. 2024-05-01T12:00:00Z (UTC when no offset is given); not a number"),
        ] = None,
        verdict: Literal["anomalous", "normal"] | None = None,
        model: Annotated[str | None, Query(pattern=NAME_PATTERN, description="a served model's name")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> dict:
        if since is not None and since.tzinfo is not None:
            since = since.astimezone(UTC).replace(tzinfo=None)
        assert state.store is not None
        rows = await run_in_threadpool(state.store.query, since, verdict, model, limit)
        return {"results": [r.to_dict() for r in rows]}

    @app.get(
        "/v1/results/{result_id}",
        summary="one result, with its overlay PNG (base64) when kept",
        response_model=None,
        responses={200: {"model": StoredResultWithOverlay}, **responses(400, 404, 413)},
    )
    async def get_result(result_id: Annotated[str, PathParam(max_length=64)]) -> dict:
        assert state.store is not None
        row = await run_in_threadpool(state.store.get, result_id)
        if row is None:
            raise HTTPException(404, f"no result {result_id!r}")
        return row.to_dict(with_overlay=True)


def _score_route(app: FastAPI, state: ServerState) -> None:
    async def score(
        name: Annotated[str, PathParam(pattern=NAME_PATTERN, description="a served model's name")],
        images: list[UploadFile],
        map: Annotated[
            Literal["png", "raw"] | None, Query(description="png: overlay (base64 PNG); raw: the map")
        ] = None,
    ) -> JSONResponse:
        return JSONResponse(await score_images(state, name, images, map))

    # The bounds come from the config, so the annotation is set here rather than in the signature.
    n = state.config.max_images
    score.__annotations__["images"] = Annotated[
        list[UploadFile], File(description=f"one to {n} image files", min_length=1, max_length=n)
    ]
    app.post(
        "/v1/models/{name}/score",
        summary="score one or several images (multipart files 'images')",
        response_model=None,
        responses={200: {"model": ScoreAnswer}, **responses(400, 404, 408, 413, 500, 503)},
    )(score)


def _routes(app: FastAPI, state: ServerState) -> None:
    @app.get(
        "/healthz",
        summary="the process is up (no key needed)",
        response_model=None,
        responses={200: {"model": Health}, **responses(400, 413)},
    )
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get(
        "/readyz",
        summary="every model loaded and warm, and the database checked (no key needed)",
        response_model=None,
        responses={
            200: {"model": Ready},
            503: {"model": Ready, "description": "models still loading"},
            **responses(400, 413),
        },
    )
    async def readyz() -> JSONResponse:
        body = {"ready": state.ready, "models": sorted([*state.models, *state.streams])}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.get(
        "/metrics",
        summary="Prometheus text format",
        response_class=PlainTextResponse,
        responses=responses(400, 413),
    )
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(state.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get(
        "/v1/models",
        summary="the served models",
        response_model=None,
        responses={200: {"model": ModelList}, **responses(400, 413)},
    )
    async def models() -> dict:
        return {"models": [{"name": k, **v.info} for k, v in state.models.items()]}

    _score_route(app, state)
    _results_routes(app, state)
    review_routes(app, state)
    stream_routes(app, state)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        headers = {"Content-Security-Policy": PAGE_POLICY, "X-Content-Type-Options": "nosniff"}
        return FileResponse(STATIC / "index.html", headers=headers)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route (and its dependencies) declares."""
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _known_query_only(request: Request) -> None:
    """422 for a query parameter the route does not document (a misspelt filter is not ignored)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not getattr(route, "include_in_schema", False):
        return
    known = _query_names(dependant)
    unknown = [k for k in request.query_params if k not in known]
    if unknown:
        allowed = ", ".join(sorted(known)) or "none"
        raise RequestValidationError(
            [
                {"type": "extra_forbidden", "loc": ("query", k), "msg": f"unknown query parameter (allowed: {allowed})"}
                for k in unknown
            ]
        )
    # every query parameter of the API takes one value: a repeat would be read as its last one
    keys = [k for k, _ in request.query_params.multi_items()]
    repeated = sorted({k for k in keys if keys.count(k) > 1})
    if repeated:
        raise RequestValidationError(
            [{"type": "too_long", "loc": ("query", k), "msg": "given more than once; give it once"} for k in repeated]
        )


def create_app(config: ServeConfig, preloaded: dict[str, ServedModel] | None = None) -> FastAPI:
    """The ASGI app for ``config`` (``preloaded``: models the caller has loaded already)."""
    from reconad.version import __version__

    state = ServerState(config)
    key = read_api_key(config.api_key_file) if config.api_key_file else None

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> Any:
        import anyio

        state.decode_slots = anyio.CapacityLimiter(config.inference_threads())
        await run_in_threadpool(state.start, preloaded)
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    app = FastAPI(
        title="reconad inspection service",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(_known_query_only)],
    )
    app.state.server = state
    _register_gauges(state)
    _routes(app, state)
    app.add_middleware(BodyLimit, max_bytes=config.max_body_bytes)
    slow = lambda: state.metrics.inc("reconad_rejected_total", (("reason", "body_timeout"),))
    app.add_middleware(BodyDeadline, seconds=config.body_timeout_s, on_timeout=slow)
    if key is not None:
        reject = lambda: state.metrics.inc("reconad_rejected_total", (("reason", "unauthorized"),))
        app.add_middleware(BearerAuth, key=key, on_reject=reject)
        _document_key(app)
    app.add_middleware(RequestMetrics, metrics=state.metrics)
    return app


def _document_key(app: FastAPI) -> None:
    """The OpenAPI document of a server with an API key says which routes need it (401 without)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_api_key(plain(), PUBLIC_PATHS)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to change the document


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes: the configuration comes in ``RECONAD_SERVE_CONFIG``."""
    return create_app(ServeConfig.from_env())
