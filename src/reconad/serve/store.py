"""The results database: every scored image, through SQLAlchemy (SQLite by default, PostgreSQL tested).

The server creates the schema itself and migrates an older one forward: a
``reconad_schema`` table holds the version, and ``MIGRATIONS`` lists the statements
that bring version ``v - 1`` to ``v`` (tables a version adds are created by
``create_all``: version 2 added ``reconad_reviews``, the audit sample and people's
reviews, and ``reconad_calibrations``, the calibrations fitted on them).  A database
written by a newer reconad is refused.  SQLite runs in WAL mode with a busy timeout, so several worker processes can
write to one file.  Rows are inserted in one transaction per request before the
response is sent: a 200 means the row is on disk.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from reconad.errors import ConfigError

__all__ = [
    "SCHEMA_VERSION",
    "MIGRATIONS",
    "BACKENDS",
    "ResultRow",
    "ReviewRow",
    "ResultStore",
    "check_results_shape",
    "utc_now",
]

log = logging.getLogger("reconad.serve")

SCHEMA_VERSION = 2
#: version -> DDL statements that bring the schema from ``version - 1`` to ``version``
#: (2: new tables only, which ``create_all`` makes)
MIGRATIONS: dict[int, list[str]] = {2: []}

metadata = sa.MetaData()
results = sa.Table(
    "reconad_results",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created_at", sa.DateTime(), nullable=False, index=True),  # UTC
    sa.Column("model_name", sa.String(64), nullable=False, index=True),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("engine", sa.String(16), nullable=False),
    sa.Column("image_name", sa.String(255), nullable=False),
    sa.Column("image_sha256", sa.String(64), nullable=False),
    sa.Column("image_bytes", sa.Integer(), nullable=False),
    sa.Column("width", sa.Integer(), nullable=False),
    sa.Column("height", sa.Integer(), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("p_value", sa.Float(), nullable=True),
    sa.Column("verdict", sa.String(16), nullable=True, index=True),
    sa.Column("threshold", sa.Float(), nullable=True),
    sa.Column("latency_ms", sa.Float(), nullable=False),
    sa.Column("overlay_png", sa.LargeBinary(), nullable=True),
)
#: results drawn into the audit sample or up for review (flagged), and what a person said about them
reviews = sa.Table(
    "reconad_reviews",
    metadata,
    sa.Column("result_id", sa.String(32), primary_key=True),
    sa.Column("model_name", sa.String(64), nullable=False, index=True),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    #: what the score's scale depends on besides the model (float or int8 engine, tiling)
    sa.Column("score_kind", sa.String(64), nullable=True),
    #: the calibration version the verdict was given under (0: the run's own)
    sa.Column("calibration_version", sa.Integer(), nullable=True),
    sa.Column("audit", sa.Boolean(), nullable=False, index=True),
    sa.Column("image", sa.LargeBinary(), nullable=True),
    sa.Column("label", sa.String(16), nullable=True),  # normal | defect
    sa.Column("reviewed_at", sa.DateTime(), nullable=True),
    sa.Column("saved_as", sa.String(1024), nullable=True),
)
#: calibrations fitted on reviewed audit normals, numbered per model from 1
calibrations = sa.Table(
    "reconad_calibrations",
    metadata,
    sa.Column("model_name", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("created_at", sa.DateTime(), nullable=False),
    sa.Column("model_sha256", sa.String(64), nullable=False),
    sa.Column("score_kind", sa.String(64), nullable=False),
    sa.Column("threshold", sa.Float(), nullable=False),
    sa.Column("fpr", sa.Float(), nullable=False),
    sa.Column("n_normal", sa.Integer(), nullable=False),
    sa.Column("normal_scores", sa.Text(), nullable=False),  # JSON list
)
schema = sa.Table("reconad_schema", metadata, sa.Column("version", sa.Integer(), nullable=False))


def utc_now() -> datetime:
    """Naive UTC (every backend stores it the same way)."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class ResultRow:
    """One scored image as the database records it."""

    id: str
    created_at: datetime
    model_name: str
    model_sha256: str
    engine: str
    image_name: str
    image_sha256: str
    image_bytes: int
    width: int
    height: int
    score: float
    p_value: float | None
    verdict: str | None
    threshold: float | None
    latency_ms: float
    overlay_png: bytes | None = None

    def to_dict(self, with_overlay: bool = False) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "overlay_png"}
        d["created_at"] = self.created_at.isoformat(timespec="microseconds") + "Z"
        d["has_overlay"] = self.overlay_png is not None
        if with_overlay:
            d["overlay_png"] = None if self.overlay_png is None else base64.b64encode(self.overlay_png).decode("ascii")
        return d


@dataclass
class ReviewRow:
    """A result in the audit sample or up for review, as ``reconad_reviews`` holds it."""

    result_id: str
    model_name: str
    model_sha256: str
    score_kind: str | None
    calibration_version: int | None
    audit: bool
    image: bytes | None = None
    label: str | None = None
    reviewed_at: datetime | None = None
    saved_as: str | None = None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; safe across processes
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint, no fsync per commit
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


#: the database backends the results are kept in (both tested)
BACKENDS = ("sqlite", "postgresql")


def _hide_password(url: str) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` (SQLite in WAL mode with a busy timeout)."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise ConfigError(
            f"--db {url!r} is not a database URL (e.g. sqlite:///results.db or postgresql://host/db)"
        ) from None
    if parsed.get_backend_name() not in BACKENDS:
        raise ConfigError(
            f"--db {_hide_password(url)}: a {parsed.get_backend_name()!r} database is not supported; "
            "use SQLite (sqlite:///FILE) or PostgreSQL (postgresql://HOST/DB)"
        )
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3, not the older psycopg2
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, pool_size=8, max_overflow=8)
    except (ImportError, sa.exc.NoSuchModuleError, sa.exc.ArgumentError) as exc:
        raise ConfigError(f"--db {url!r}: no driver for it here ({exc}); pip install 'reconad[serve]'") from None


class ResultStore:
    """Writes and queries scored images."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    def migrate(self) -> int:
        """Create the schema, or bring an older one to ``SCHEMA_VERSION``; the version it is at."""
        try:
            with self.engine.begin() as conn:
                metadata.create_all(conn, checkfirst=True)
                current = conn.execute(sa.select(schema.c.version)).scalar()
                if current is None:
                    conn.execute(schema.insert().values(version=SCHEMA_VERSION))
                    return SCHEMA_VERSION
                if current > SCHEMA_VERSION:
                    raise ConfigError(
                        f"the results database {self.safe_url} has schema version {current}, newer than this "
                        f"reconad's {SCHEMA_VERSION}: upgrade reconad or use another --db"
                    )
                for version in range(current + 1, SCHEMA_VERSION + 1):
                    for statement in MIGRATIONS.get(version, []):
                        conn.execute(sa.text(statement))
                    log.warning("results database migrated to schema version %d", version)
                conn.execute(schema.update().values(version=SCHEMA_VERSION))
        except sa.exc.OperationalError as exc:
            raise ConfigError(f"cannot open the results database {self.safe_url}: {exc.orig}") from None
        return SCHEMA_VERSION

    def prepare(self) -> None:
        """``migrate``, then ``check_results_shape``: what the server runs before it says ready.

        Any database error (a file that is not SQLite, a server that does not answer) is one line
        naming --db."""
        try:
            with self.engine.connect() as conn:  # reachable, and a database at all
                conn.execute(sa.text("SELECT 1"))
            self.migrate()
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigError(f"--db {self.safe_url}: cannot open the results database ({_why(exc)})") from None
        check_results_shape(self.engine, self.safe_url)

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden (for messages)."""
        return sa.engine.make_url(self.url).render_as_string(hide_password=True)

    def add(self, rows: list[ResultRow], review_rows: list[ReviewRow] | None = None) -> None:
        """Insert one request's rows (and those of its results set aside for review) in one transaction."""
        if not rows:
            return
        values = [{k: getattr(r, k) for k in r.__dataclass_fields__} for r in rows]
        with self.engine.begin() as conn:
            conn.execute(results.insert(), values)
            if review_rows:
                conn.execute(
                    reviews.insert(), [{k: getattr(r, k) for k in r.__dataclass_fields__} for r in review_rows]
                )

    def get(self, result_id: str) -> ResultRow | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(results).where(results.c.id == result_id)).mappings().first()
        return None if row is None else ResultRow(**row)

    def query(
        self,
        since: datetime | None = None,
        verdict: str | None = None,
        model: str | None = None,
        limit: int = 50,
        image_prefix: str | None = None,
    ) -> list[ResultRow]:
        """Newest first; overlays are not read (``get`` returns them)."""
        cols = [c for c in results.c if c.name != "overlay_png"]
        has_overlay = results.c.overlay_png.is_not(None).label("has_overlay")
        q = sa.select(*cols, has_overlay)
        if since is not None:
            q = q.where(results.c.created_at >= since)
        if verdict is not None:
            q = q.where(results.c.verdict == verdict)
        if model is not None:
            q = q.where(results.c.model_name == model)
        if image_prefix is not None:
            q = q.where(results.c.image_name.startswith(image_prefix, autoescape=True))
        q = q.order_by(results.c.created_at.desc(), results.c.id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            flag = d.pop("has_overlay")
            out.append(ResultRow(**d, overlay_png=b"" if flag else None))
        return out

    def count(self, model: str | None = None, image_prefix: str | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(results)
        if model is not None:
            q = q.where(results.c.model_name == model)
        if image_prefix is not None:
            q = q.where(results.c.image_name.startswith(image_prefix, autoescape=True))
        with self.engine.connect() as conn:
            return int(conn.execute(q).scalar() or 0)

    def close(self) -> None:
        self.engine.dispose()


def _why(exc: BaseException) -> str:
    """The database's own words, on one line (SQLAlchemy appends a multi-line SQL dump and a link)."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _kind(column_type: Any) -> str:
    """What a column holds, as far as reading our rows back depends on it."""
    for kind, types in (
        ("number", (sa.Integer, sa.Float, sa.Numeric)),
        ("time", (sa.DateTime, sa.Date)),
        ("bool", (sa.Boolean,)),
        ("bytes", (sa.LargeBinary,)),
        ("text", (sa.String,)),
    ):
        if isinstance(column_type, types):
            return kind
    return type(column_type).__name__


def check_results_shape(engine: Engine, where: str) -> None:
    """Refuse a ``reconad_results`` (or reviews, calibrations) table of another shape than this reconad writes.

    ``create_all`` leaves an existing table as it is, so a table another program (or an
    unrelated schema) made under the same name would pass the start and fail every insert:
    every column reconad writes must be there, and no other column may be required."""
    for table in (results, reviews, calibrations):
        _check_table(engine, where, table)


def _check_table(engine: Engine, where: str, table: sa.Table) -> None:
    try:
        columns = sa.inspect(engine).get_columns(table.name)
    except sa.exc.SQLAlchemyError as exc:
        raise ConfigError(f"--db {where}: cannot read the table {table.name} ({_why(exc)})") from None
    found = {c["name"]: c for c in columns}
    missing = [c.name for c in table.c if c.name not in found]
    retyped = [
        f"{c.name} is {found[c.name]['type']}, not {c.type}"
        for c in table.c
        if c.name in found and _kind(found[c.name]["type"]) != _kind(c.type)
    ]
    required = [
        name
        for name, c in found.items()
        if name not in table.c
        and not c.get("nullable", True)
        and c.get("default") is None
        and c.get("autoincrement") is not True
    ]
    if missing or retyped or required:
        parts = (
            ([f"lacks column(s) {', '.join(missing)}"] if missing else [])
            + retyped
            + ([f"requires column(s) reconad does not write: {', '.join(required)}"] if required else [])
        )
        raise ConfigError(
            f"--db {where}: its table {table.name} is not reconad's ({'; '.join(parts)}); "
            "use another --db or move that table away"
        )
