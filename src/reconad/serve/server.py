"""``reconad serve``: check everything, then run uvicorn.

Everything that can be wrong is found before the port is bound: the API key file, the
database (created or migrated here once, before any worker starts), and every model
(a tampered model file stops the start with a message naming the file; the ONNX export
is written or checked here, so workers never race to write it).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
from pathlib import Path

from reconad.errors import ConfigError, DataError
from reconad.serve.config import CONFIG_ENV, ServeConfig
from reconad.serve.engines import ServedModel, load_served_model
from reconad.serve.security import read_api_key
from reconad.serve.store import ResultStore

__all__ = ["preflight", "serve"]

log = logging.getLogger("reconad.serve")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def preflight(config: ServeConfig) -> dict[str, ServedModel]:
    """Key file, database and models, checked (and the schema migrated) before serving."""
    for run in config.runs:  # before the default database, which would be opened inside the first run
        if not Path(run.path).is_dir():
            raise DataError(f"no such run directory: {run.path}")
    if config.api_key_file:
        read_api_key(config.api_key_file)
    elif not _is_loopback(config.host):
        log.warning("serving on %s without --api-key-file: anyone who can reach it can use it", config.host)
    threads = config.inference_threads()

    def load() -> dict[str, ServedModel]:
        return {
            run.name: load_served_model(run, config.engine, threads, (config.tile_size, config.tile_overlap))
            for run in config.runs
        }

    # the default database lives in the first run: its models are checked first, so a refused
    # model leaves no new results.db behind; a --db given is checked before any model loads
    models = None if config.db else load()
    store = ResultStore(config.db_url)
    try:
        store.prepare()  # migrated, and its results table of reconad's shape: else one line naming --db
    finally:
        store.close()
    if config.audit_share > 0:  # reviewed defects must have somewhere to go
        for run in config.runs:
            folder = config.defects_folder(run)
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"--defects-dir: cannot create {folder} ({exc.strerror})") from None
    return models if models is not None else load()


def serve(config: ServeConfig) -> None:
    """Serve ``config.runs`` until SIGTERM / Ctrl-C (in-flight requests finish first)."""
    import uvicorn

    from reconad.serve.connections import HEADER_TIMEOUT_ENV, HeaderDeadlineProtocol

    models = preflight(config)
    os.environ[HEADER_TIMEOUT_ENV] = str(config.body_timeout_s)  # read by every worker's connections
    run = functools.partial(
        uvicorn.run,
        http=HeaderDeadlineProtocol,
        host=config.host,
        port=config.port,
        log_level=config.log_level,
        limit_concurrency=config.max_connections,
        timeout_graceful_shutdown=int(config.graceful_timeout_s),
        server_header=False,
    )
    names = ", ".join(f"{m.name} ({m.engine.name})" for m in models.values())
    store = ResultStore(config.db_url)
    print(
        f"reconad serve: {names} at http://{config.host}:{config.port} "
        f"(database {store.safe_url}; {config.workers} worker(s))",
        flush=True,
    )
    store.close()
    if config.workers == 1:
        from reconad.serve.app import create_app

        run(create_app(config, preloaded=models))
        return
    models.clear()  # each worker loads its own copy
    os.environ[CONFIG_ENV] = config.to_json()
    run("reconad.serve.app:app_from_env", factory=True, workers=config.workers)
