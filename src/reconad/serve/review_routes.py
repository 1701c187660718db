"""The routes of the audit sample: review a result, see the audit queue and the measured
false-alarm rate, recalibrate from reviewed audit normals, list calibration versions.

Each served model scores with its newest calibration of the same model file and score kind
(``reconad.serve.review_store``), looked up on every request, so every worker process
switches to a new version from its next request on, without retraining or a restart.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from reconad.serve.audit import drop_defect, save_defect, score_kind, with_calibration
from reconad.serve.config import NAME_PATTERN
from reconad.serve.engines import ServedModel
from reconad.serve.recalibration import AUDIT_SOURCE, TooFewNormals, false_alarm_band, recalibrate
from reconad.serve.review_store import CalibrationRecord, Reviewed, ReviewStore, VersionTaken
from reconad.serve.schemas import (
    AuditQueue,
    CalibrationList,
    CalibrationVersion,
    FalseAlarmRate,
    RecalibrateRequest,
    ResultImage,
    ReviewAnswer,
    ReviewRequest,
    responses,
)
from reconad.serve.store import ResultRow, ReviewRow, utc_now

if TYPE_CHECKING:
    from reconad.serve.app import ServerState
    from reconad.serve.decode import Upload

__all__ = ["active_model", "review_rows", "review_routes"]

log = logging.getLogger("reconad.serve")
ModelName = Annotated[str, PathParam(pattern=NAME_PATTERN, description="a served model's name")]
ResultId = Annotated[str, PathParam(max_length=64)]


def _reviews(state: ServerState) -> ReviewStore:
    assert state.reviews is not None
    return state.reviews


def active_model(state: ServerState, name: str) -> ServedModel:
    """Model ``name`` with its newest calibration version (switched here when another appeared)."""
    own, current = state.own_models[name], state.models[name]
    version = _reviews(state).latest_version(name, own.sha256, score_kind(own))
    if version == current.info.get("calibration_version"):
        return current
    model = own
    record = _reviews(state).calibration(name, version) if version else None
    if record is not None:
        model = with_calibration(own, recalibrate(record.normal_scores, record.fpr), version)
        log.info("%s: scoring with calibration version %d (threshold %.6g)", name, version, model.threshold)
    state.models[name] = model
    return model


def review_rows(
    state: ServerState, model: ServedModel, rows: list[ResultRow], uploads: list[Upload], audit: list[bool]
) -> list[ReviewRow]:
    """Rows for the results set aside: the audit sample, and (auditing on) the flagged ones with their uploads."""
    on, kind, version = state.sampler.on, score_kind(model), int(model.info.get("calibration_version", 0))
    out = []
    for row, upload, drawn in zip(rows, uploads, audit):
        if drawn or (on and row.verdict == "anomalous"):
            image = upload.data if on else None
            out.append(ReviewRow(row.id, model.name, model.sha256, kind, version, drawn, image))
    return out


def _served(state: ServerState, name: str) -> None:
    if name not in state.models:
        raise HTTPException(404, f"unknown model {name!r}; served: {', '.join(sorted(state.models)) or 'none'}")


def _version0(state: ServerState, name: str, active: int) -> dict[str, Any]:
    own = state.own_models[name]
    cal = own.calibration
    return {
        "version": 0,
        "active": active == 0,
        "created_at": None,
        "source": "the run's own" + ("" if cal is None else f" ({cal.n} {cal.source} scores)"),
        "threshold": own.threshold,
        "basis": None if cal is None else cal.basis,
        "target_fpr": None if cal is None else cal.target_fpr,
        "expected_fpr": None if cal is None else cal.expected_fpr,
        "n_normal": None if cal is None else cal.n,
        "model_sha256": own.sha256,
        "score_kind": score_kind(own),
    }


def _version(record: CalibrationRecord, active: int) -> dict[str, Any]:
    cal = recalibrate(record.normal_scores, record.fpr)
    return {
        "version": record.version,
        "active": record.version == active,
        "created_at": record.created_at.isoformat(timespec="microseconds") + "Z",
        "source": AUDIT_SOURCE + " scores",
        "threshold": record.threshold,
        "basis": cal.basis,
        "target_fpr": record.fpr,
        "expected_fpr": cal.expected_fpr,
        "n_normal": record.n_normal,
        "model_sha256": record.model_sha256,
        "score_kind": record.score_kind,
    }


def false_alarm_rate(state: ServerState, name: str) -> dict[str, Any]:
    """The active calibration's rate on the reviewed audit normals scored under it, with its 90 % band."""
    model = active_model(state, name)
    version, cal = int(model.info["calibration_version"]), model.calibration
    n, k = _reviews(state).false_alarms(name, model.sha256, score_kind(model), version)
    band = false_alarm_band(k, n)
    if band.rate is None:
        note = f"no reviewed audit normal scored under calibration version {version} yet"
    else:
        note = (
            f"{k} of {n} reviewed audit normals flagged: {100 * band.rate:.3g}% "
            f"(90% band {100 * band.low:.2g}-{100 * band.high:.2g}%)"
        )
    return {
        "model": name,
        "calibration_version": version,
        "threshold": model.threshold,
        "target_fpr": None if cal is None else cal.target_fpr,
        "expected_fpr": None if cal is None else cal.expected_fpr,
        "reviewed_normals": n,
        "flagged": k,
        "rate": band.rate,
        "band": [band.low, band.high],
        "level": band.level,
        "note": note,
    }


def _audit_queue(state: ServerState, name: str, limit: int) -> dict[str, Any]:
    pending = []
    for result, review in _reviews(state).pending(name, limit):
        item = result.to_dict()
        item.update(calibration_version=review.calibration_version, has_image=review.image is not None)
        pending.append(item)
    return {
        "model": name,
        "audit_share": state.sampler.share,
        "counts": _reviews(state).audit_counts(name),
        "pending": pending,
        "false_alarm_rate": false_alarm_rate(state, name),
    }


def _store_review(state: ServerState, item: Reviewed, label: str) -> ReviewRow:
    """Save (or, reviewed normal again, remove) a defect's image, then record the label."""
    review, saved_as = item.review, None
    previous = None if review is None else review.saved_as
    if label == "defect":
        saved_as = previous
        if saved_as is None and review is not None and review.image:
            run = next((r for r in state.config.runs if r.name == item.result.model_name), None)
            if run is not None:
                folder = state.config.defects_folder(run)
                try:
                    saved_as = str(save_defect(folder, item.result.id, review.image))
                except OSError as exc:
                    raise HTTPException(500, f"cannot save the defect's image in {folder}: {exc.strerror}") from None
    else:
        drop_defect(previous)
    return _reviews(state).set_label(item, label, utc_now(), saved_as)


def _review_route(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/results/{result_id}/review",
        summary="record what a person found: normal or defect (a defect's image is kept for training)",
        response_model=None,
        responses={
            200: {"model": ReviewAnswer},
            **responses(400, 404, 413, 500, why={500: "the defect's image could not be written"}),
        },
    )
    async def review(result_id: ResultId, body: ReviewRequest) -> dict:
        item = await run_in_threadpool(_reviews(state).get, result_id)
        if item is None:
            raise HTTPException(404, f"no result {result_id!r}")
        row = await run_in_threadpool(_store_review, state, item, body.label)
        assert row.reviewed_at is not None and row.label is not None
        return {
            "result_id": row.result_id,
            "model_name": row.model_name,
            "label": row.label,
            "reviewed_at": row.reviewed_at.isoformat(timespec="microseconds") + "Z",
            "audit": row.audit,
            "saved_as": row.saved_as,
        }

    @app.get(
        "/v1/results/{result_id}/image",
        summary="the uploaded image kept for review (audited and flagged results, auditing on)",
        response_model=None,
        responses={200: {"model": ResultImage}, **responses(400, 404, 413)},
    )
    async def image(result_id: ResultId) -> dict:
        item = await run_in_threadpool(_reviews(state).get, result_id)
        if item is None or item.review is None or not item.review.image:
            raise HTTPException(404, f"no image kept for result {result_id!r}")
        data = base64.b64encode(item.review.image).decode("ascii")
        return {"id": result_id, "image_name": item.result.image_name, "image": data}


def _calibration_routes(app: FastAPI, state: ServerState) -> None:
    @app.post(
        "/v1/models/{name}/recalibrate",
        status_code=201,
        summary="fit a new threshold and p-values on the reviewed normals of the audit sample, and use them",
        response_model=None,
        responses={201: {"model": CalibrationVersion}, **responses(400, 404, 409, 413)},
    )
    async def recalibrate_route(name: ModelName, body: RecalibrateRequest | None = None) -> dict:
        _served(state, name)
        return await run_in_threadpool(_recalibrate, state, name, None if body is None else body.fpr)

    @app.get(
        "/v1/models/{name}/calibrations",
        summary="the model's calibration versions, newest first (0: the run's own)",
        response_model=None,
        responses={200: {"model": CalibrationList}, **responses(400, 404, 413)},
    )
    async def calibrations(name: ModelName) -> dict:
        _served(state, name)
        model = await run_in_threadpool(active_model, state, name)
        active = int(model.info["calibration_version"])
        records = await run_in_threadpool(_reviews(state).calibrations, name)
        versions = [_version(r, active) for r in records] + [_version0(state, name, active)]
        return {"model": name, "active": active, "versions": versions}

    @app.get(
        "/v1/models/{name}/false-alarm-rate",
        summary="the active threshold's false-alarm rate on reviewed audit normals, with its 90% band",
        response_model=None,
        responses={200: {"model": FalseAlarmRate}, **responses(400, 404, 413)},
    )
    async def rate(name: ModelName) -> dict:
        _served(state, name)
        return await run_in_threadpool(false_alarm_rate, state, name)

    @app.get(
        "/v1/models/{name}/audit",
        summary="the audit sample: results awaiting review, counts, and the measured false-alarm rate",
        response_model=None,
        responses={200: {"model": AuditQueue}, **responses(400, 404, 413)},
    )
    async def audit(name: ModelName, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict:
        _served(state, name)
        return await run_in_threadpool(_audit_queue, state, name, limit)


def _recalibrate(state: ServerState, name: str, fpr: float | None) -> dict[str, Any]:
    model = active_model(state, name)
    if fpr is None:
        fpr = None if model.calibration is None else model.calibration.target_fpr
        if fpr is None:
            raise HTTPException(409, f"{name}: its calibration has no target false-alarm rate; give one as fpr")
    kind = score_kind(model)
    scores = _reviews(state).audit_normal_scores(name, model.sha256, kind)
    try:
        cal = recalibrate(scores, fpr)
    except TooFewNormals as exc:
        raise HTTPException(409, f"{name}: {exc}") from None
    record = CalibrationRecord(
        name, 0, utc_now(), model.sha256, kind, float(cal.threshold), float(fpr), cal.n, cal.normal_scores.tolist()
    )
    try:
        _reviews(state).add_calibration(record)
    except VersionTaken:
        raise HTTPException(409, f"{name}: another recalibration was stored at the same moment; retry") from None
    state.models[name] = with_calibration(state.own_models[name], cal, record.version)
    log.warning(
        "%s: calibration version %d from %d reviewed audit normals: %s", name, record.version, cal.n, cal.describe()
    )
    return _version(record, record.version)


def review_routes(app: FastAPI, state: ServerState) -> None:
    """Register the audit sample's routes."""
    _review_route(app, state)
    _calibration_routes(app, state)
