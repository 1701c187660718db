"""``reconad serve`` keeps its threshold true on the line: a seeded audit sample of scored
images (flagged and passed alike), reviews, recalibration from reviewed audit normals only
(a new threshold and p-values without retraining, versioned in the results database and
used by every server on it), the measured false-alarm rate with its 90 % band, reviewed
defects kept where ``reconad train --labelled-anomalies`` reads them, and the bad input
(an audit share outside [0, 1), an unknown result, too few reviewed normals): one line.

Real uvicorn servers in threads on 127.0.0.1 serving a 16 px autoencoder; every step waits
for the answer before the next (no timing).
"""

from __future__ import annotations

import math
import sqlite3

import httpx
import numpy as np
import pytest

from helpers.minimal_models import minimal_detector
from helpers.serve import png_bytes, server_thread
from reconad.serve.app import create_app
from reconad.serve.audit import AuditSampler
from reconad.serve.config import ServeConfig, ServedRun
from reconad.serve.recalibration import false_alarm_band

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(300)]

#: nearly every image is drawn (an audit share must stay below 1)
NEARLY_ALL = 0.999


@pytest.fixture(scope="module")
def run(single_thread, tmp_path_factory):
    root = tmp_path_factory.mktemp("audit-run")
    minimal_detector("ae").save(root / "run" / "model")
    return root / "run"


def _config(run, db, **kw) -> ServeConfig:
    return ServeConfig(
        runs=[ServedRun("toy", str(run))], db=f"sqlite:///{db}", engine="torch", threads=1, max_images=32, **kw
    )


def _images(n: int, seed: int) -> list[tuple[str, tuple[str, bytes]]]:
    rng = np.random.default_rng(seed)
    return [
        ("images", (f"img-{seed}-{i}.png", png_bytes(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))))
        for i in range(n)
    ]


def _score(client: httpx.Client, n: int, seed: int) -> list[dict]:
    r = client.post("/v1/models/toy/score", files=_images(n, seed))
    assert r.status_code == 200, r.text
    return r.json()["results"]


def _review(client: httpx.Client, result_id: str, label: str) -> dict:
    r = client.post(f"/v1/results/{result_id}/review", json={"label": label})
    assert r.status_code == 200, r.text
    return r.json()


def _conformal_threshold(scores: list[float], fpr: float) -> float:
    """The ceil((n + 1)(1 - fpr))-th smallest score."""
    s = sorted(scores)
    return s[math.ceil((len(s) + 1) * (1 - fpr) - 1e-9) - 1]


def test_the_audit_draw_is_seeded_and_takes_its_share():
    a, b, c = AuditSampler(0.2, 7), AuditSampler(0.2, 7), AuditSampler(0.2, 8)
    first = a.draw(5000)
    assert first == b.draw(5000) and first != c.draw(5000)
    n, k = 5000, sum(first)
    assert abs(k - 0.2 * n) < 4 * math.sqrt(n * 0.2 * 0.8)
    assert AuditSampler(0.0, 7).draw(10) == [False] * 10


@pytest.mark.parametrize("share", ["1", "1.5", "-0.1"])
def test_an_audit_share_outside_0_1_is_one_line(run, tmp_path, capsys, share):
    from reconad.cli import main

    rc = main(["serve", str(run), "--db", f"sqlite:///{tmp_path / 'r.db'}", "--port", "0", "--audit-share", share])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "--audit-share must be in [0, 1)" in err, err


def test_without_an_audit_share_nothing_is_set_aside(run, tmp_path):
    with server_thread(create_app(_config(run, tmp_path / "r.db"))) as url, httpx.Client(base_url=url) as client:
        results = _score(client, 4, 0)
        assert not any(r["audit"] for r in results)
        queue = client.get("/v1/models/toy/audit").json()
        assert queue["counts"]["audited"] == 0 and queue["pending"] == [] and queue["audit_share"] == 0
        assert client.get(f"/v1/results/{results[0]['id']}/image").status_code == 404


def test_reviewed_audit_normals_recalibrate_threshold_and_p_values(run, tmp_path):
    defects = tmp_path / "defects"
    config = _config(run, tmp_path / "r.db", audit_share=NEARLY_ALL, audit_seed=3, defects_dir=str(defects))
    with server_thread(create_app(config)) as url, httpx.Client(base_url=url) as client:
        scored = _score(client, 24, 1)
        queue = client.get("/v1/models/toy/audit", params={"limit": 100}).json()
        drawn = {r["id"] for r in scored if r["audit"]}
        assert {p["id"] for p in queue["pending"]} == drawn and queue["counts"]["pending"] == len(drawn) >= 20
        assert all(p["has_image"] and p["calibration_version"] == 0 for p in queue["pending"])
        pending = queue["pending"]
        defect, normals = pending[0], pending[1:]
        for item in normals:
            assert _review(client, item["id"], "normal")["audit"] is True

        # a defect's upload is kept where --labelled-anomalies reads it, as a labelled anomaly
        saved = _review(client, defect["id"], "defect")["saved_as"]
        from reconad.data.spec import labelled_folder

        ds = labelled_folder(defects / "toy", 16, "resize")
        uploaded = dict(part for _, part in _images(24, 1))
        assert saved is not None and len(ds) == 1 and ds[0].label == 1
        assert open(ds[0].path, "rb").read() == uploaded[defect["image_name"]]

        r = client.post("/v1/models/toy/recalibrate", json={"fpr": 0.1})
        assert r.status_code == 201, r.text
        version = r.json()
        scores = [item["score"] for item in normals]
        assert version["version"] == 1 and version["active"] and version["n_normal"] == len(scores)
        assert version["threshold"] == pytest.approx(_conformal_threshold(scores, 0.1))
        (model,) = client.get("/v1/models").json()["models"]
        assert model["calibration_version"] == 1 and model["threshold"] == pytest.approx(version["threshold"])

        # new scores: the new threshold, and p-values against the reviewed normals
        for res in _score(client, 8, 2):
            assert res["threshold"] == pytest.approx(version["threshold"])
            assert res["verdict"] == ("anomalous" if res["score"] > version["threshold"] else "normal")
            at_least = sum(s >= res["score"] for s in scores)
            assert res["p_value"] == pytest.approx((1 + at_least) / (len(scores) + 1))
        listed = client.get("/v1/models/toy/calibrations").json()
        assert listed["active"] == 1 and [v["version"] for v in listed["versions"]] == [1, 0]
        assert listed["versions"][1]["threshold"] != listed["versions"][0]["threshold"]

        # reviewed normal after all: the saved image goes
        assert _review(client, defect["id"], "normal")["saved_as"] is None
        assert list((defects / "toy").iterdir()) == []


def test_the_false_alarm_rate_rests_on_reviewed_audit_normals_scored_under_the_calibration(run, tmp_path):
    config = _config(run, tmp_path / "r.db", audit_share=NEARLY_ALL, audit_seed=5, defects_dir=str(tmp_path / "d"))
    with server_thread(create_app(config)) as url, httpx.Client(base_url=url) as client:
        before = client.get("/v1/models/toy/false-alarm-rate").json()
        assert before["reviewed_normals"] == 0 and before["rate"] is None and before["band"] == [0.0, 1.0]
        results = [r for r in _score(client, 20, 3) if r["audit"]]
        for r in results:
            _review(client, r["id"], "normal")
        rate = client.get("/v1/models/toy/false-alarm-rate").json()
        flagged = sum(r["verdict"] == "anomalous" for r in results)
        assert rate["calibration_version"] == 0 and rate["reviewed_normals"] == len(results)
        assert rate["flagged"] == flagged and rate["rate"] == pytest.approx(flagged / len(results))
        low, high = rate["band"]
        assert low <= rate["rate"] <= high and rate["level"] == 0.9 and str(len(results)) in rate["note"]
        assert client.get("/v1/models/toy/audit").json()["false_alarm_rate"] == rate

        client.post("/v1/models/toy/recalibrate", json={"fpr": 0.2}).raise_for_status()
        after = client.get("/v1/models/toy/false-alarm-rate").json()  # fresh images only: none yet
        assert after["calibration_version"] == 1 and after["reviewed_normals"] == 0
        fresh = [r for r in _score(client, 6, 4) if r["audit"]]
        for r in fresh:
            _review(client, r["id"], "normal")
        after = client.get("/v1/models/toy/false-alarm-rate").json()
        assert after["reviewed_normals"] == len(fresh)
        assert after["flagged"] == sum(r["verdict"] == "anomalous" for r in fresh)


def test_the_band_is_the_exact_binomial_one():
    none = false_alarm_band(0, 30)
    assert none.low == 0 and none.high == pytest.approx(1 - 0.05 ** (1 / 30))  # (1 - high)^n = 0.05
    full = false_alarm_band(30, 30)
    assert full.high == 1 and full.low == pytest.approx(0.05 ** (1 / 30))
    mid = false_alarm_band(3, 60)
    assert mid.low < 0.05 < mid.high and mid.rate == 0.05
    assert false_alarm_band(0, 0).rate is None


def test_only_audit_sampled_normals_recalibrate_and_bad_input_is_one_line(run, tmp_path):
    db = tmp_path / "r.db"
    with server_thread(create_app(_config(run, db))) as url, httpx.Client(base_url=url) as client:
        for r in _score(client, 12, 6):  # no audit sample: reviews count for nothing
            assert _review(client, r["id"], "normal")["audit"] is False
        r = client.post("/v1/models/toy/recalibrate", json={"fpr": 0.2})
        assert r.status_code == 409 and r.json()["detail"].count("\n") == 0
        assert "needs at least 4 reviewed normal images from the audit sample, there are 0" in r.json()["detail"]
        unknown = client.post("/v1/results/0123abcd/review", json={"label": "normal"})
        assert unknown.status_code == 404 and unknown.json()["detail"] == "no result '0123abcd'"
        assert client.post("/v1/models/nope/recalibrate").status_code == 404
        assert client.post("/v1/models/toy/recalibrate", json={"fpr": 1.0}).status_code == 422
        assert client.post("/v1/results/0123abcd/review", json={"label": "maybe"}).status_code == 422
        assert client.get("/v1/models/toy/calibrations").json()["versions"][0]["version"] == 0


def test_flagged_images_are_drawn_too(run, tmp_path):
    """The audit draws from every image: after a recalibration that flags most, flagged ones are audited."""
    config = _config(run, tmp_path / "r.db", audit_share=NEARLY_ALL, audit_seed=9, defects_dir=str(tmp_path / "d"))
    with server_thread(create_app(config)) as url, httpx.Client(base_url=url) as client:
        for r in _score(client, 12, 7):
            _review(client, r["id"], "normal")
        client.post("/v1/models/toy/recalibrate", json={"fpr": 0.5}).raise_for_status()
        results = _score(client, 16, 8)
        flagged = [r for r in results if r["verdict"] == "anomalous"]
        assert flagged and all(r["audit"] for r in flagged)


def test_a_new_version_is_used_by_every_server_on_the_database(run, tmp_path):
    """Two servers on one database (as two worker processes): a recalibration through one is
    used by the other from its next request on, and by a server started later."""
    db = tmp_path / "r.db"
    config = _config(run, db, audit_share=NEARLY_ALL, audit_seed=1, defects_dir=str(tmp_path / "d"))
    with (
        server_thread(create_app(config)) as url_a,
        server_thread(create_app(config)) as url_b,
        httpx.Client(base_url=url_a) as a,
        httpx.Client(base_url=url_b) as b,
    ):
        for r in _score(a, 10, 10):
            _review(b, r["id"], "normal")
        new = a.post("/v1/models/toy/recalibrate", json={"fpr": 0.25}).json()
        assert all(r["threshold"] == pytest.approx(new["threshold"]) for r in _score(b, 2, 11))
    with server_thread(create_app(_config(run, db))) as url, httpx.Client(base_url=url) as later:
        (model,) = later.get("/v1/models").json()["models"]
        assert model["calibration_version"] == new["version"] and model["threshold"] == pytest.approx(new["threshold"])


def test_a_version_1_database_is_migrated(run, tmp_path):
    """A results database written before the audit sample gains its tables and keeps its rows."""
    from reconad.serve.store import SCHEMA_VERSION, ResultStore

    db = tmp_path / "old.db"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE reconad_results (id VARCHAR(32) PRIMARY KEY, created_at DATETIME NOT NULL, "
        "model_name VARCHAR(64) NOT NULL, model_sha256 VARCHAR(64) NOT NULL, engine VARCHAR(16) NOT NULL, "
        "image_name VARCHAR(255) NOT NULL, image_sha256 VARCHAR(64) NOT NULL, image_bytes INTEGER NOT NULL, "
        "width INTEGER NOT NULL, height INTEGER NOT NULL, score FLOAT NOT NULL, p_value FLOAT, verdict VARCHAR(16), "
        "threshold FLOAT, latency_ms FLOAT NOT NULL, overlay_png BLOB)"
    )
    con.execute("CREATE TABLE reconad_schema (version INTEGER NOT NULL)")
    con.execute("INSERT INTO reconad_schema VALUES (1)")
    con.execute(
        "INSERT INTO reconad_results VALUES ('a1', '2026-01-01 00:00:00', 'toy', 'x', 'torch', 'a.png', 'y', 1, "
        "1, 1, 0.5, 0.5, 'normal', 1.0, 1.0, NULL)"
    )
    con.commit()
    con.close()
    store = ResultStore(f"sqlite:///{db}")
    store.prepare()
    assert store.count() == 1
    store.close()
    con = sqlite3.connect(db)
    tables = {name for (name,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"reconad_reviews", "reconad_calibrations"} <= tables
    assert con.execute("SELECT version FROM reconad_schema").fetchone() == (SCHEMA_VERSION,) == (2,)
    con.close()
    with server_thread(create_app(_config(run, db))) as url, httpx.Client(base_url=url) as client:
        assert _review(client, "a1", "normal")["audit"] is False  # an old result can be reviewed


def test_the_audit_routes_take_the_api_key_like_every_other(run, tmp_path):
    key = "audit-test-key-0123456789"
    (tmp_path / "key").write_text(key)
    (tmp_path / "key").chmod(0o600)
    config = _config(run, tmp_path / "r.db", audit_share=NEARLY_ALL, audit_seed=2, api_key_file=str(tmp_path / "key"))
    auth = {"Authorization": f"Bearer {key}"}
    with server_thread(create_app(config)) as url, httpx.Client(base_url=url, headers=auth) as client:
        (result,) = _score(client, 1, 12)
        calls = [
            ("POST", f"/v1/results/{result['id']}/review", {"label": "defect"}),
            ("GET", f"/v1/results/{result['id']}/image", None),
            ("POST", "/v1/models/toy/recalibrate", {"fpr": 0.5}),
            ("GET", "/v1/models/toy/calibrations", None),
            ("GET", "/v1/models/toy/false-alarm-rate", None),
            ("GET", "/v1/models/toy/audit", None),
        ]
        for method, path, body in calls:
            assert httpx.request(method, url + path, json=body).status_code == 401, path
        assert client.get("/v1/models/toy/audit").json()["counts"]["pending"] == 1  # the review was not recorded
        assert _review(client, result["id"], "normal")["label"] == "normal"
