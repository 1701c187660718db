"""The service's video-stream routes (``reconad.serve.streams``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from fastapi import FastAPI, File, HTTPException, UploadFile
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from reconad.errors import DataError
from reconad.serve.config import NAME_PATTERN
from reconad.serve.schemas import StreamEnded, StreamFrameAnswer, responses
from reconad.serve.streams import StreamModel

if TYPE_CHECKING:
    from reconad.serve.app import ServerState

ModelName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="a served frame model's name")]
StreamName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="the stream's name, chosen by the client")]


def _stream_model(state: ServerState, name: str) -> StreamModel:
    if not state.ready:
        raise HTTPException(503, "not ready: models are still loading", headers={"Retry-After": "1"})
    model = state.streams.get(name)
    if model is None:
        have = ", ".join(sorted(state.streams)) or "none"
        raise HTTPException(404, f"no frame model {name!r} (served frame models: {have})")
    return model


def stream_routes(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/streams/{name}/{stream}/frames",
        summary="score one video frame as the next of a stream (multipart file 'frame'; frame models only)",
        response_model=None,
        responses={200: {"model": StreamFrameAnswer}, **responses(400, 404, 413, 500, 503)},
    )
    async def frame(name: ModelName, stream: StreamName, frame: Annotated[UploadFile, File()]) -> dict:
        model = _stream_model(state, name)
        data = await frame.read()
        try:
            return await run_in_threadpool(model.score, stream, data)
        except DataError as exc:
            status = 500 if "non-finite" in str(exc) else 400
            raise HTTPException(status, str(exc)) from None

    @app.delete(
        "/v1/streams/{name}/{stream}",
        summary="end a stream (its next frame starts a new one)",
        response_model=None,
        responses={200: {"model": StreamEnded}, **responses(400, 404, 413, 503)},
    )
    async def end(name: ModelName, stream: StreamName) -> dict:
        model = _stream_model(state, name)
        return {"model": name, "stream": stream, "ended": model.end(stream)}
