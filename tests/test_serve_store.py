"""The results database: SQLite in WAL mode written by several processes at once, schema
creation and migration, and the same store (and the whole API) on a real PostgreSQL server
that this test starts itself (Debian's ``postgresql``; skipped with the reason where it
cannot run).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from helpers.serve import free_port, server_thread, texture_images, tiny_run
from reconad.serve import store as store_mod
from reconad.serve.store import ResultRow, ResultStore, utc_now

pytestmark = pytest.mark.timeout(300)


def _row(i: int, verdict: str = "normal", model: str = "m") -> ResultRow:
    return ResultRow(
        id=f"{i:032x}",
        created_at=utc_now(),
        model_name=model,
        model_sha256="a" * 64,
        engine="onnx",
        image_name=f"img-{i}.png",
        image_sha256="b" * 64,
        image_bytes=100,
        width=8,
        height=8,
        score=float(i),
        p_value=0.5,
        verdict=verdict,
        threshold=1.0,
        latency_ms=1.0,
        overlay_png=b"png" if verdict == "anomalous" else None,
    )


def _exercise(store: ResultStore) -> None:
    """What the API asks of a store, on any backend."""
    assert store.migrate() == store_mod.SCHEMA_VERSION
    assert store.migrate() == store_mod.SCHEMA_VERSION  # idempotent
    store.add([_row(1), _row(2, "anomalous"), _row(3, model="other")])
    assert store.count() == 3 and store.count(model="m") == 2 and store.count(image_prefix="img-") == 3
    assert [r.id for r in store.query(verdict="anomalous")] == [f"{2:032x}"]
    assert {r.id for r in store.query(model="m")} == {f"{1:032x}", f"{2:032x}"}
    assert store.query(since=utc_now() + timedelta(minutes=1)) == []
    assert len(store.query(limit=2)) == 2
    got = store.get(f"{2:032x}")
    assert got is not None and got.overlay_png == b"png" and got.score == 2.0
    assert store.get("missing") is None
    assert store.query(image_prefix="img_")[:1] == []  # '_' is literal, not a wildcard
    _exercise_reviews(store)


def _exercise_reviews(store: ResultStore) -> None:
    """The audit sample's rows, reviews and calibration versions, on any backend."""
    from reconad.serve.review_store import CalibrationRecord, ReviewStore
    from reconad.serve.store import ReviewRow

    reviews = ReviewStore(store.engine)
    rows = [_row(100 + i, "anomalous" if i == 3 else "normal", model="audited") for i in range(4)]
    store.add(rows, [ReviewRow(r.id, "audited", "a" * 64, "float", 0, i < 3, b"img") for i, r in enumerate(rows)])
    assert [r.id for r, _ in reviews.pending("audited", 10)] == [r.id for r in rows[:3]]
    for r in rows[:3]:
        item = reviews.get(r.id)
        assert item is not None and item.review is not None and item.review.image == b"img"
        reviews.set_label(item, "normal", utc_now(), None)
    missing = reviews.get(f"{1:032x}")  # a result never set aside: reviewed outside the sample
    assert missing is not None and reviews.set_label(missing, "defect", utc_now(), "x.png").audit is False
    assert reviews.audit_counts("audited") == {"audited": 3, "reviewed_normal": 3, "reviewed_defect": 0, "pending": 0}
    assert sorted(reviews.audit_normal_scores("audited", "a" * 64, "float")) == [100.0, 101.0, 102.0]
    assert reviews.audit_normal_scores("audited", "a" * 64, "int8") == []
    assert reviews.false_alarms("audited", "a" * 64, "float", 0) == (3, 0)
    for _ in range(2):
        record = CalibrationRecord("audited", 0, utc_now(), "a" * 64, "float", 102.0, 0.25, 3, [100.0, 101.0, 102.0])
        reviews.add_calibration(record)
    assert reviews.latest_version("audited", "a" * 64, "float") == 2 == record.version
    assert reviews.latest_version("audited", "b" * 64, "float") == 0
    assert [c.version for c in reviews.calibrations("audited")] == [2, 1]
    stored = reviews.calibration("audited", 1)
    assert stored is not None and stored.normal_scores == [100.0, 101.0, 102.0]


def test_sqlite_store_uses_wal_and_answers_queries(tmp_path):
    store = ResultStore(f"sqlite:///{tmp_path / 'r.db'}")
    _exercise(store)
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_several_processes_write_one_sqlite_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ResultStore(url).migrate()
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_serve_store import _row
        from reconad.serve.store import ResultStore
        store = ResultStore({url!r})
        base = int(sys.argv[1]) * 1000
        for i in range(100):
            store.add([_row(base + i)])
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, str(k)]) for k in range(3)]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    assert ResultStore(url).count() == 300


def test_an_older_schema_is_migrated_and_a_newer_one_refused(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = ResultStore(url)
    old.migrate()
    old.add([_row(1)])
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", store_mod.SCHEMA_VERSION + 1)
    monkeypatch.setitem(
        store_mod.MIGRATIONS, store_mod.SCHEMA_VERSION, ["ALTER TABLE reconad_results ADD COLUMN note VARCHAR(32)"]
    )
    new = ResultStore(url)
    assert new.migrate() == store_mod.SCHEMA_VERSION
    with new.engine.connect() as conn:
        assert conn.execute(sa.select(store_mod.schema.c.version)).scalar() == store_mod.SCHEMA_VERSION
        columns = {c["name"] for c in sa.inspect(conn).get_columns("reconad_results")}
    assert "note" in columns and new.count() == 1
    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", store_mod.SCHEMA_VERSION - 1)
    from reconad.errors import ConfigError

    with pytest.raises(ConfigError, match="newer than this reconad"):
        ResultStore(url).migrate()


def test_a_bad_database_url_is_one_clear_error(tmp_path):
    from reconad.errors import ConfigError

    with pytest.raises(ConfigError, match="not a database URL"):
        ResultStore("not a url")
    with pytest.raises(ConfigError, match="cannot open the results database"):
        ResultStore(f"sqlite:///{tmp_path / 'no' / 'such' / 'dir.db'}").migrate()


def _sqlite_table(path: Path, ddl: str) -> str:
    import sqlite3

    con = sqlite3.connect(path)
    con.execute(ddl)
    con.commit()
    con.close()
    return f"sqlite:///{path}"


_OURS = (
    "id VARCHAR(32) PRIMARY KEY, created_at DATETIME NOT NULL, model_name VARCHAR(64) NOT NULL, "
    "model_sha256 VARCHAR(64) NOT NULL, engine VARCHAR(16) NOT NULL, image_name VARCHAR(255) NOT NULL, "
    "image_sha256 VARCHAR(64) NOT NULL, image_bytes INTEGER NOT NULL, width INTEGER NOT NULL, "
    "height INTEGER NOT NULL, score {score} NOT NULL, p_value FLOAT, verdict VARCHAR(16), threshold FLOAT, "
    "latency_ms FLOAT NOT NULL, overlay_png BLOB{extra}"
)


@pytest.mark.parametrize(
    ("columns", "phrase"),
    [
        ("id TEXT PRIMARY KEY, payload TEXT NOT NULL", "lacks column(s) created_at"),
        (_OURS.format(score="TEXT", extra=""), "score is TEXT, not FLOAT"),
        (_OURS.format(score="FLOAT", extra=", operator VARCHAR(8) NOT NULL"), "reconad does not write: operator"),
    ],
    ids=["another-table", "a-retyped-column", "an-extra-required-column"],
)
def test_a_results_table_of_another_shape_stops_the_start_in_one_line(tmp_path, capsys, columns, phrase):
    """It used to pass /readyz and answer 500 to every score: the insert failed, not the start."""
    from reconad.cli import main

    url = _sqlite_table(tmp_path / "foreign.db", f"CREATE TABLE reconad_results ({columns})")
    (tmp_path / "run").mkdir()  # the database is checked before any model is loaded
    rc = main(["serve", str(tmp_path / "run"), "--db", url, "--port", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert f"--db {url}" in err and "reconad_results is not reconad's" in err and phrase in err


def test_the_app_checks_the_table_too_and_a_compatible_one_is_used(tmp_path):
    """The app's own start (worker processes, tests) refuses the same table; an extra
    optional column is no reason to refuse."""
    from reconad.errors import ConfigError
    from reconad.serve.app import ServerState
    from reconad.serve.config import ServeConfig

    bad = _sqlite_table(tmp_path / "bad.db", "CREATE TABLE reconad_results (id TEXT PRIMARY KEY)")
    with pytest.raises(ConfigError, match="lacks column"):
        ServerState(ServeConfig(db=bad)).start()
    ok = _sqlite_table(
        tmp_path / "ok.db", f"CREATE TABLE reconad_results ({_OURS.format(score='FLOAT', extra=', note TEXT')})"
    )
    store = ResultStore(ok)
    store.prepare()
    store.add([_row(1)])
    assert store.count() == 1
    store.close()


@pytest.mark.parametrize(
    ("url", "phrase"),
    [
        ("mysql://user:secret@db.example/results", "'mysql' database is not supported"),
        ("http://db.example/results", "'http' database is not supported"),
        ("results.db", "is not a database URL"),
        ("sqlite:///{tmp}/text.db", "cannot open the results database (file is not a database)"),
        ("sqlite:///{tmp}/no/such/dir.db", "cannot open the results database"),
        ("postgresql://user:secret@/results?host={tmp}/no-socket-here", "cannot open the results database"),
    ],
    ids=["mysql", "http", "a-file-name", "a-text-file", "a-missing-folder", "postgresql-unreachable"],
)
def test_databases_reconad_cannot_use_are_one_line_naming_db(tmp_path, capsys, url, phrase):
    from reconad.cli import main

    (tmp_path / "text.db").write_text("not a database\n" * 100)
    (tmp_path / "run").mkdir()
    url = url.format(tmp=tmp_path)
    rc = main(["serve", str(tmp_path / "run"), "--db", url, "--port", "0"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "--db " in err and phrase in err and "secret" not in err


# ------------------------------------------------------------------ PostgreSQL


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextlib.contextmanager
def _postgres_server():
    """A throw-away PostgreSQL server on 127.0.0.1 (run as the ``postgres`` user when we are root)."""
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL test skipped: no server binaries (install Debian's postgresql; .ci/run does)")
    prefix: list[str] = []
    owner = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("PostgreSQL test skipped: running as root and there is no 'postgres' user to run it as")
        prefix = ["setpriv", f"--reuid={owner.pw_uid}", f"--regid={owner.pw_gid}", "--init-groups", "--"]
    tmp = Path(tempfile.mkdtemp(prefix="reconad-pg-"))
    data, port = tmp / "data", free_port()
    if owner is not None:
        os.chown(tmp, owner.pw_uid, owner.pw_gid)
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)
    try:
        run(str(bindir / "initdb"), "-D", str(data), "-U", "reconad", "--auth=trust", "-E", "UTF8", "--no-sync")
        opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {tmp} -c fsync=off"
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(tmp / "log"), "-w", "-t", "60", "start")
    except subprocess.CalledProcessError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        pytest.fail(f"PostgreSQL did not start: {exc.stderr.decode(errors='replace')[-500:]}")
    try:
        yield f"postgresql://reconad@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], capture_output=True
        )
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("PostgreSQL test skipped: psycopg is not installed (pip install 'reconad[serve]')")
    with _postgres_server() as url:
        yield url


@pytest.mark.slow
def test_postgresql_store_and_the_api_on_a_real_server(postgres_url, tiny_mvtec, tmp_path_factory):
    store = ResultStore(postgres_url)
    assert store.engine.dialect.name == "postgresql"
    _exercise(store)
    store.close()

    from reconad.serve.app import create_app
    from reconad.serve.config import ServeConfig, ServedRun

    run = tiny_run(tiny_mvtec, tmp_path_factory.getbasetemp())
    config = ServeConfig(runs=[ServedRun("brick", str(run))], db=postgres_url, threads=1)
    image = texture_images(tiny_mvtec)[0]
    with server_thread(create_app(config)) as url:
        posted = httpx.post(f"{url}/v1/models/brick/score", files=[("images", (image.name, image.read_bytes()))])
        assert posted.status_code == 200, posted.text
        rid = posted.json()["results"][0]["id"]
        fetched = httpx.get(f"{url}/v1/results/{rid}").json()
        assert fetched["score"] == posted.json()["results"][0]["score"] and fetched["image_name"] == image.name
    assert ResultStore(postgres_url).count(model="brick") == 1
