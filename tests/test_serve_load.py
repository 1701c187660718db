"""``reconad benchmark --protocol serve``: the load test end to end on the tiny run, in
seconds instead of minutes (the offline ``reconad predict`` reference is stubbed here; the
real one runs in the benchmark itself)."""

from __future__ import annotations

import json

import pytest

from helpers.serve import tiny_run
from reconad.cli import main
from reconad.protocols import serve_load

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_serve_protocol_measures_phases_and_a_flood(tiny_mvtec, tmp_path, tmp_path_factory, monkeypatch, capsys):
    run = tiny_run(tiny_mvtec, tmp_path_factory.getbasetemp())
    offline = {
        "command": "reconad predict (stubbed)",
        "images": 16,
        "seconds_all": 1.0,
        "seconds_8": 0.5,
        "images_per_second": 16.0,
        "images_per_second_whole_command": 16.0,
    }
    monkeypatch.setattr(serve_load, "offline_rate", lambda *a, **k: offline)
    out = tmp_path / "bench"
    sets = ["clients=[1,2]", "seconds=1.0", "flood_seconds=2.0", "flood_clients=8", "n_images=4"]
    sets += ['server={"queue_size": 2, "threads": 1}']
    rc = main(
        ["benchmark", "--protocol", "serve", "--run", str(run), "--out", str(out), "--quiet"]
        + [a for s in sets for a in ("--set", s)]
    )
    assert rc == 0, capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    assert doc["protocol"] == "serve" and "--protocol serve" in doc["command"]
    assert [p["clients"] for p in doc["phases"]] == [1, 2]
    assert all(p["ok"] > 0 and p["errors"] == 0 and p["p99_ms"] >= p["p50_ms"] for p in doc["phases"])
    flood = doc["flood"]
    assert set(flood["status_counts"]) <= {"200", "503"} and flood["requests"] > 0
    assert doc["checks"]["rows_equal_200s"] is True and doc["checks"]["flood_only_200_and_503"] is True
    assert doc["rows"]["flood-"] == flood["ok"] and doc["checks"]["peak_rss_mib"] > 0
    md = (out / "results.md").read_text()
    assert "Flood" in md and "Load average" in md and "images_per_second" in md


def test_serve_protocol_needs_a_run(capsys):
    assert main(["benchmark", "--protocol", "serve", "--quiet"]) == 2
    assert "--run RUN is required" in capsys.readouterr().err
