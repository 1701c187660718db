"""What ``reconad serve`` is told: one typed record, passed unchanged to every worker process."""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reconad.errors import ConfigError
from reconad.inference.names import DEFAULT_ENGINE, ENGINES
from reconad.jsonfile import dumps

__all__ = ["ServeConfig", "ServedRun", "parse_runs", "OVERLAY_POLICIES", "ENGINES", "CONFIG_ENV", "NAME_PATTERN"]

#: which scored images keep their heat-map overlay in the database
OVERLAY_POLICIES = ("none", "flagged", "all")
#: the environment variable that hands the configuration to uvicorn's worker processes
CONFIG_ENV = "RECONAD_SERVE_CONFIG"
#: what a served model's name may be (the API documents and checks it too)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True)
class ServedRun:
    """A run directory and the name the API serves it under."""

    name: str
    path: str


def parse_runs(items: list[str]) -> list[ServedRun]:
    """``RUN`` or ``NAME=RUN`` each; the name defaults to the run folder's name and must be unique."""
    runs: list[ServedRun] = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item.rstrip("/")).name, item
        if not _NAME.match(name):
            raise ConfigError(f"model name {name!r} ({item}): use letters, digits, '.', '_' or '-' (at most 64)")
        if any(r.name == name for r in runs):
            raise ConfigError(f"two runs would be served as {name!r}: give one of them a name with NAME=RUN")
        runs.append(ServedRun(name, str(Path(path).resolve())))
    if not runs:
        raise ConfigError("give at least one run directory to serve")
    return runs


def available_cores() -> int:
    """CPU cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@dataclass
class ServeConfig:
    """Every setting of the server.

    ``db``: a SQLite or PostgreSQL URL (default: a SQLite file ``results.db`` in the first
    run directory).  ``threads``: inference threads per worker process (default: the
    available cores divided by ``workers``).  Limits: ``max_body_bytes`` per request
    (413 beyond), ``max_pixels`` per decoded image (400 beyond: decompression bombs),
    ``max_images`` per request, ``max_tiles`` tiles per request to a model that scores
    by tiles (413 beyond: there the work grows with the pixels), ``body_timeout_s`` for
    a request's body to arrive after its headers (408 beyond; ``reconad serve`` also closes
    a connection whose next request's headers take as long).  Micro-batching: up to
    ``max_batch`` images per forward pass, waiting at most ``batch_wait_ms`` for more; at
    most ``queue_size`` images admitted and not yet answered per model, 503 with
    Retry-After beyond.
    ``keep_overlays``: which results keep their overlay PNG in the database (at most
    ``overlay_cap_bytes`` each).  ``max_connections``: open connections per worker
    beyond which uvicorn answers 503 at once (bounds the memory of request bodies).
    ``audit_share``: the chance, in [0, 1), that a scored image (flagged or passed) is drawn
    into the audit sample a person reviews (0: no audit), by a stream seeded with
    ``audit_seed`` (None: a seed from the system, logged); with auditing on, the uploads of
    audited and flagged images are kept in the database for review.  ``defects_dir``:
    where reviewed defects are saved, one folder per model (default: ``reviewed-defects``
    in each model's run folder).
    """

    runs: list[ServedRun] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000
    engine: str = DEFAULT_ENGINE
    db: str | None = None
    api_key_file: str | None = None
    workers: int = 1
    threads: int | None = None
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 4096 * 4096
    max_images: int = 32
    max_tiles: int = 256
    body_timeout_s: float = 30.0
    max_batch: int = 4
    batch_wait_ms: float = 2.0
    queue_size: int = 64
    keep_overlays: str = "flagged"
    overlay_cap_bytes: int = 512 * 1024
    max_connections: int = 128
    log_level: str = "info"
    graceful_timeout_s: float = 30.0
    #: score by another tiling than the runs' own (reconad.runs.retile: their thresholds are then dropped)
    tile_size: int | None = None
    tile_overlap: int | None = None
    audit_share: float = 0.0
    audit_seed: int | None = None
    defects_dir: str | None = None

    def __post_init__(self) -> None:
        self.runs = [r if isinstance(r, ServedRun) else ServedRun(**r) for r in self.runs]
        self.check()

    def check(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.keep_overlays not in OVERLAY_POLICIES:
            raise ConfigError(f"--keep-overlays must be one of {', '.join(OVERLAY_POLICIES)}")
        for key in (
            "workers",
            "max_body_bytes",
            "max_pixels",
            "max_images",
            "max_tiles",
            "max_batch",
            "queue_size",
            "max_connections",
        ):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key.replace('_', '-')} must be >= 1, got {getattr(self, key)}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if not 0 < self.body_timeout_s < float("inf"):
            raise ConfigError(f"body-timeout-s must be a number of seconds > 0, got {self.body_timeout_s}")
        if self.batch_wait_ms < 0 or self.overlay_cap_bytes < 0:
            raise ConfigError("batch-wait-ms and overlay-cap must not be negative")
        if not 0 <= self.audit_share < 1:  # NaN fails too
            raise ConfigError(f"--audit-share must be in [0, 1) (0: no audit sample), got {self.audit_share}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        from reconad.tiling import check_tiling

        check_tiling(self.tile_size, self.tile_overlap)

    @property
    def db_url(self) -> str:
        if self.db:
            return self.db
        if not self.runs:
            raise ConfigError("no database URL and no run directory to put the default SQLite file in")
        return f"sqlite:///{Path(self.runs[0].path) / 'results.db'}"

    def defects_folder(self, run: ServedRun) -> Path:
        """Where ``run``'s reviewed defects are saved (the folder ``--labelled-anomalies`` reads)."""
        if self.defects_dir:
            return Path(self.defects_dir) / run.name
        return Path(run.path) / "reviewed-defects"

    def inference_threads(self) -> int:
        return self.threads or max(1, available_cores() // max(1, self.workers))

    def to_json(self) -> str:
        return dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeConfig:
        data: dict[str, Any] = json.loads(text)
        return cls(**data)

    @classmethod
    def from_env(cls) -> ServeConfig:
        text = os.environ.get(CONFIG_ENV)
        if not text:
            raise ConfigError(f"{CONFIG_ENV} is not set: start the server with `reconad serve`")
        return cls.from_json(text)
