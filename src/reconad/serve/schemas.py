"""The service's contract: the body of every answer, and the status codes each route documents.

The routes return plain dicts (the score route a ``JSONResponse``); these models only
describe them in the OpenAPI document, so ``tests/test_serve_contract.py`` can check,
with a schema-driven fuzzer, that every answer has a documented status and conforms.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "Detail",
    "Health",
    "Ready",
    "ModelInfo",
    "ModelList",
    "StoredResult",
    "StoredResultWithOverlay",
    "ScoredImage",
    "ScoreAnswer",
    "ResultList",
    "ReviewRequest",
    "ReviewAnswer",
    "ResultImage",
    "AuditQueue",
    "FalseAlarmRate",
    "RecalibrateRequest",
    "CalibrationVersion",
    "CalibrationList",
    "responses",
    "iso_time",
    "document_api_key",
]

Verdict = Literal["anomalous", "normal"]
ReviewLabel = Literal["normal", "defect"]
TIME: dict[str, Any] = {"format": "date-time"}


class Detail(BaseModel):
    """Every refusal but a request validation error (422): one line saying why."""

    detail: str


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: bool
    models: list[str]


class ModelInfo(BaseModel):
    name: str
    model: str = Field(description="the model kind, e.g. hfr")
    image_size: int
    resize_mode: str
    tiling: list[int] | None = Field(description="[tile size, overlap] of a model that scores by tiles")
    threshold: float | None
    threshold_basis: str | None
    expected_false_alarm_rate: float | None
    calibration: str | None = Field(description="the threshold and what it means, in words")
    calibration_version: int = Field(description="0: the run's own; n: fitted on reviewed audit normals")
    training_data: str | None
    model_sha256: str
    engine: str


class ModelList(BaseModel):
    models: list[ModelInfo]


class StoredResult(BaseModel):
    """One scored image as the results database holds it."""

    id: str
    created_at: str = Field(json_schema_extra={"format": "date-time"}, description="UTC")
    model_name: str
    model_sha256: str
    engine: str
    image_name: str
    image_sha256: str
    image_bytes: int
    width: int
    height: int
    score: float
    p_value: float | None = Field(description="conformal p-value against the run's normal scores")
    verdict: Verdict | None = Field(description="at the run's threshold; null when the run has none")
    threshold: float | None
    latency_ms: float
    has_overlay: bool


class StoredResultWithOverlay(StoredResult):
    overlay_png: str | None = Field(description="the kept heat-map overlay, base64 PNG")


class ScoredImage(StoredResult):
    threshold_basis: str | None
    audit: bool = Field(description="drawn into the audit sample (--audit-share): set the part aside for review")
    batch_size: int = Field(description="images in the forward pass that scored this one")
    overlay_png: str | None = Field(description="with ?map=png: the heat-map overlay, base64 PNG")
    map: list[list[float]] | None = Field(default=None, description="with ?map=raw only: the anomaly map")


class ScoreAnswer(BaseModel):
    model: str
    results: list[ScoredImage]


class StreamFrameAnswer(BaseModel):
    """One frame of a video stream, scored with the frames before it in the same stream."""

    model: str
    stream: str
    frame: int = Field(description="the frame's number in the stream, from 1")
    score: float
    threshold: float | None
    above_threshold: bool


class StreamEnded(BaseModel):
    model: str
    stream: str
    ended: bool = Field(description="false: no such stream was open")


class ResultList(BaseModel):
    results: list[StoredResult]


class ReviewRequest(BaseModel):
    """What a person found on the imaged part."""

    model_config = ConfigDict(extra="forbid")
    label: ReviewLabel


class ReviewAnswer(BaseModel):
    result_id: str
    model_name: str
    label: ReviewLabel
    reviewed_at: str = Field(json_schema_extra=TIME, description="UTC")
    audit: bool = Field(description="in the audit sample: only such reviewed normals recalibrate")
    saved_as: str | None = Field(
        description="a defect's image file, in the folder `reconad train --labelled-anomalies` reads "
        "(null: a normal, or no image was kept)"
    )


class ResultImage(BaseModel):
    id: str
    image_name: str
    image: str = Field(description="the uploaded image kept for review, base64")


class AuditItem(StoredResult):
    calibration_version: int | None
    has_image: bool


class AuditCounts(BaseModel):
    audited: int
    reviewed_normal: int
    reviewed_defect: int
    pending: int


class FalseAlarmRate(BaseModel):
    """The share of reviewed audit normals the active calibration flagged, with its band."""

    model: str
    calibration_version: int
    threshold: float | None
    target_fpr: float | None = Field(description="the rate the calibration was fitted for")
    expected_fpr: float | None = Field(description="the rate the calibration promises (conformal)")
    reviewed_normals: int = Field(description="reviewed audit normals scored under this calibration")
    flagged: int
    rate: float | None = Field(description="flagged / reviewed_normals (null: none yet)")
    band: list[float] = Field(min_length=2, max_length=2, description="Clopper-Pearson band [low, high]")
    level: float = Field(description="the band's coverage, 0.9")
    note: str


class AuditQueue(BaseModel):
    model: str
    audit_share: float
    counts: AuditCounts
    pending: list[AuditItem] = Field(description="audit-sample results awaiting review, oldest first")
    false_alarm_rate: FalseAlarmRate


class RecalibrateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    fpr: float | None = Field(
        default=None, gt=0, lt=1, description="target false-alarm rate (default: the active calibration's)"
    )


class CalibrationVersion(BaseModel):
    version: int = Field(description="0: the run's own calibration")
    active: bool
    created_at: str | None = Field(json_schema_extra=TIME, description="UTC; null for the run's own")
    source: str
    threshold: float | None
    basis: str | None
    target_fpr: float | None
    expected_fpr: float | None
    n_normal: int | None
    model_sha256: str
    score_kind: str = Field(description="float or int8 engine, and the tiling: what the scores' scale depends on")


class CalibrationList(BaseModel):
    model: str
    active: int
    versions: list[CalibrationVersion] = Field(description="newest first")


_WHY = {
    400: "a malformed request: an upload that is not an image Pillow can read, one over --max-pixels, "
    "a body that is not multipart, or an invalid Content-Length",
    401: "missing or invalid API key (only when the server was started with --api-key-file)",
    404: "no such model or result (or no image kept for it)",
    408: "the request body did not arrive within --body-timeout-s of its headers (the connection is closed)",
    413: "request body over --max-body-mb, or (a model that scores by tiles) a request needing more than "
    "--max-tiles tiles",
    409: "recalibration: fewer reviewed audit normals than the target false-alarm rate needs, no target "
    "rate to fit, or another recalibration of the model at the same moment",
    500: "the model gave a non-finite score on a decoded image",
    503: "not ready: models still loading, or the scoring queue is full (see Retry-After)",
}


def responses(*codes: int, why: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The documented refusals ``codes`` (each answered as ``{"detail": "..."}``); ``why``: a
    route's own words for some of them."""
    return {code: {"model": Detail, "description": (why or {}).get(code, _WHY[code])} for code in codes}


def _no_numbers(value: Any) -> Any:
    """Refuse a bare number where an ISO 8601 time is documented (pydantic reads it as a Unix
    time): anything Python reads as a float, exponents, ``inf`` and ``nan`` included."""
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
    raise ValueError("give an ISO 8601 time such as 2024-05-01T12:00:00Z, not a number")


#: a query parameter that takes an ISO 8601 time (a string), never a number of seconds
iso_time = BeforeValidator(_no_numbers)


def document_api_key(openapi: dict[str, Any], public: tuple[str, ...]) -> dict[str, Any]:
    """``openapi`` with the bearer key required (and 401 documented) on every route but ``public``."""
    openapi.setdefault("components", {}).setdefault("securitySchemes", {})["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "the key in the server's --api-key-file",
    }
    detail = {"$ref": "#/components/schemas/Detail"}
    for path, operations in openapi.get("paths", {}).items():
        if path in public:
            continue
        for operation in operations.values():
            operation["security"] = [{"apiKey": []}]
            operation.setdefault("responses", {})["401"] = {
                "description": _WHY[401],
                "content": {"application/json": {"schema": detail}},
            }
    return openapi
