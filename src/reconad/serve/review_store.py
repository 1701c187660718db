"""The audit sample, people's reviews and the calibrations fitted on them, in the results database.

``reconad_reviews`` holds a row for every result drawn into the audit sample and every
flagged one kept for review (with the uploaded image when auditing is on), and the label a
person gave it; ``reconad_calibrations`` the calibrations fitted on reviewed audit normals
(``reconad.serve.recalibration``), numbered per model from 1 (0 is the run's own).  Only
calibrations of the same model file and score kind (float or int8 engine, tiling) as the
served model apply to it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconad.serve.store import ResultRow, ReviewRow, calibrations, results, reviews

__all__ = ["CalibrationRecord", "ReviewStore", "Reviewed", "VersionTaken"]


class VersionTaken(Exception):
    """Another process stored a calibration version of this model at the same moment."""


@dataclass
class CalibrationRecord:
    """One stored calibration of a model (``normal_scores``: the reviewed audit normals' scores)."""

    model_name: str
    version: int
    created_at: datetime
    model_sha256: str
    score_kind: str
    threshold: float
    fpr: float
    n_normal: int
    normal_scores: list[float]

    def to_row(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["normal_scores"] = json.dumps([float(s) for s in self.normal_scores])
        return d

    @classmethod
    def from_row(cls, row: Any) -> CalibrationRecord:
        d = dict(row)
        d["normal_scores"] = json.loads(d["normal_scores"])
        return cls(**d)


@dataclass
class Reviewed:
    """A result and its review row (None: never set aside nor reviewed)."""

    result: ResultRow
    review: ReviewRow | None


def _review(row: Any) -> ReviewRow:
    return ReviewRow(**{k: row[k] for k in ReviewRow.__dataclass_fields__})


class ReviewStore:
    """Queries on ``reconad_reviews`` and ``reconad_calibrations`` (the engine of a ``ResultStore``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ------------------------------------------------------------------ reviews
    def get(self, result_id: str) -> Reviewed | None:
        """The result ``result_id`` with its review row; None for an unknown result."""
        with self.engine.connect() as conn:
            res = conn.execute(sa.select(results).where(results.c.id == result_id)).mappings().first()
            if res is None:
                return None
            rev = conn.execute(sa.select(reviews).where(reviews.c.result_id == result_id)).mappings().first()
        return Reviewed(ResultRow(**res), None if rev is None else _review(rev))

    def set_label(self, item: Reviewed, label: str, when: datetime, saved_as: str | None) -> ReviewRow:
        """Record ``label`` for a result (a result never set aside gets a row outside the audit sample)."""
        with self.engine.begin() as conn:
            if item.review is None:
                r = item.result
                row = ReviewRow(r.id, r.model_name, r.model_sha256, None, None, False, None, label, when, saved_as)
                conn.execute(reviews.insert().values(**{k: getattr(row, k) for k in row.__dataclass_fields__}))
                return row
            conn.execute(
                reviews.update()
                .where(reviews.c.result_id == item.result.id)
                .values(label=label, reviewed_at=when, saved_as=saved_as)
            )
        item.review.label, item.review.reviewed_at, item.review.saved_as = label, when, saved_as
        return item.review

    def pending(self, model: str, limit: int) -> list[tuple[ResultRow, ReviewRow]]:
        """Audit-sample results of ``model`` nobody has reviewed yet, oldest first (images not read)."""
        cols = [c for c in results.c if c.name != "overlay_png"]
        rcols = [c for c in reviews.c if c.name != "image"]
        q = (
            sa.select(*cols, *rcols, reviews.c.image.is_not(None).label("has_image"))
            .join(reviews, reviews.c.result_id == results.c.id)
            .where(reviews.c.model_name == model, reviews.c.audit.is_(True), reviews.c.label.is_(None))
            .order_by(results.c.created_at, results.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        out = []
        for row in rows:
            result = ResultRow(**{k: row[k] for k in ResultRow.__dataclass_fields__ if k != "overlay_png"})
            review = ReviewRow(**{k: row[k] for k in ReviewRow.__dataclass_fields__ if k != "image"})
            review.image = b"" if row["has_image"] else None
            out.append((result, review))
        return out

    def audit_counts(self, model: str) -> dict[str, int]:
        """Audit-sample results of ``model``: in all, reviewed normal, reviewed defect, awaiting review."""
        q = (
            sa.select(reviews.c.label, sa.func.count())
            .where(reviews.c.model_name == model, reviews.c.audit.is_(True))
            .group_by(reviews.c.label)
        )
        with self.engine.connect() as conn:
            counts = {label: int(n) for label, n in conn.execute(q).all()}
        total = sum(counts.values())
        return {
            "audited": total,
            "reviewed_normal": counts.get("normal", 0),
            "reviewed_defect": counts.get("defect", 0),
            "pending": counts.get(None, 0),
        }

    def _audit_normals(self, model: str, sha: str, kind: str) -> sa.Select:
        return (
            sa.select(results.c.score, results.c.verdict)
            .join(reviews, reviews.c.result_id == results.c.id)
            .where(
                reviews.c.model_name == model,
                reviews.c.model_sha256 == sha,
                reviews.c.score_kind == kind,
                reviews.c.audit.is_(True),
                reviews.c.label == "normal",
            )
        )

    def audit_normal_scores(self, model: str, sha: str, kind: str) -> list[float]:
        """Scores of every reviewed normal in the audit sample of this model file and score kind."""
        with self.engine.connect() as conn:
            return [float(s) for s, _ in conn.execute(self._audit_normals(model, sha, kind)).all()]

    def false_alarms(self, model: str, sha: str, kind: str, version: int) -> tuple[int, int]:
        """(reviewed audit normals scored under calibration ``version``, how many of them it flagged)."""
        q = self._audit_normals(model, sha, kind).where(reviews.c.calibration_version == version)
        with self.engine.connect() as conn:
            verdicts = [v for _, v in conn.execute(q).all()]
        return len(verdicts), sum(v == "anomalous" for v in verdicts)

    def image(self, result_id: str) -> bytes | None:
        """The uploaded image kept for review, or None."""
        with self.engine.connect() as conn:
            data = conn.execute(sa.select(reviews.c.image).where(reviews.c.result_id == result_id)).scalar()
        return None if data is None else bytes(data)

    # ------------------------------------------------------------------ calibrations
    def latest_version(self, model: str, sha: str, kind: str) -> int:
        """The newest calibration version of this model file and score kind; 0 (the run's own) when none."""
        q = sa.select(sa.func.max(calibrations.c.version)).where(
            calibrations.c.model_name == model, calibrations.c.model_sha256 == sha, calibrations.c.score_kind == kind
        )
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def calibration(self, model: str, version: int) -> CalibrationRecord | None:
        q = sa.select(calibrations).where(calibrations.c.model_name == model, calibrations.c.version == version)
        with self.engine.connect() as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else CalibrationRecord.from_row(row)

    def calibrations(self, model: str) -> list[CalibrationRecord]:
        """Every stored calibration of ``model``, newest first."""
        q = sa.select(calibrations).where(calibrations.c.model_name == model).order_by(calibrations.c.version.desc())
        with self.engine.connect() as conn:
            return [CalibrationRecord.from_row(r) for r in conn.execute(q).mappings().all()]

    def add_calibration(self, record: CalibrationRecord) -> CalibrationRecord:
        """Store ``record`` as the model's next version (its ``version`` is set here)."""
        try:
            with self.engine.begin() as conn:
                q = sa.select(sa.func.max(calibrations.c.version)).where(calibrations.c.model_name == record.model_name)
                record.version = int(conn.execute(q).scalar() or 0) + 1
                conn.execute(calibrations.insert().values(**record.to_row()))
        except (sa.exc.IntegrityError, sa.exc.OperationalError):  # the same version, or SQLite's writer lock
            raise VersionTaken(record.model_name) from None
        return record
