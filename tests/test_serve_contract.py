"""``reconad serve`` keeps its OpenAPI contract: every route documents each status code it
answers, every parameter is validated as documented, and every answer conforms.

A schema-driven fuzzer (schemathesis) sends a bounded, seeded batch of generated requests,
valid and invalid, to a real uvicorn on 127.0.0.1 serving a tiny fitted model behind an
API key; any 5xx, undocumented status, non-conforming answer, valid request refused or
invalid one accepted fails the test.  ``make fuzz`` runs the same with many more examples
(``RECONAD_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import os

import httpx
import numpy as np
import pytest

from helpers.minimal_models import minimal_detector
from helpers.serve import png_bytes, server_thread
from reconad.serve.app import create_app
from reconad.serve.config import ServeConfig, ServedRun

schemathesis = pytest.importorskip("schemathesis")
hypothesis = pytest.importorskip("hypothesis")
pytest.importorskip("hypothesis.errors")

pytestmark = [pytest.mark.usefixtures("single_thread"), pytest.mark.timeout(300)]

KEY = "contract-test-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
#: generated requests per route and generation mode (valid, invalid); `make fuzz` raises it
EXAMPLES = int(os.environ.get("RECONAD_FUZZ_EXAMPLES", "30"))


@pytest.fixture(scope="module")
def served(single_thread, tmp_path_factory):
    """A 16 px autoencoder saved through the facade, served by PyTorch with an API key."""
    root = tmp_path_factory.mktemp("contract")
    minimal_detector("ae").save(root / "run" / "model")
    key = root / "key"
    key.write_text(KEY)
    key.chmod(0o600)
    config = ServeConfig(
        runs=[ServedRun("toy", str(root / "run"))],
        db=f"sqlite:///{root / 'results.db'}",
        engine="torch",
        threads=1,
        max_images=4,
        api_key_file=str(key),
        keep_overlays="all",
        audit_share=0.999,  # nearly every image in the audit sample: its routes answer with content
        audit_seed=0,
        defects_dir=str(root / "defects"),
    )
    app = create_app(config)
    with server_thread(app) as url:
        yield app, url


def _fuzz(schema, url: str, examples: int) -> tuple[int, dict[tuple[str, str], str]]:
    """(requests sent, distinct failures: (route, check) -> the fuzzer's report)."""
    from hypothesis import HealthCheck, Phase, given, settings

    modes = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
    sent, failures = 0, {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,  # the same requests on every run
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def send(case) -> None:
                nonlocal sent
                sent += 1
                # the valid key replaces a generated one; where an invalid request's mutation
                # is the missing key itself, adding it back would make that request valid
                negative = mode is schemathesis.GenerationMode.NEGATIVE  # noqa: B023 (called within the iteration)
                keep_out = negative and "Authorization" not in (case.headers or {})
                try:
                    case.call_and_validate(base_url=url, headers={} if keep_out else AUTH, timeout=60)
                except (AssertionError, BaseExceptionGroup) as exc:  # the fuzzer's failure reports
                    lines = [line.strip() for line in str(exc).splitlines() if line.startswith("- ")]
                    for check in lines or [type(exc).__name__]:
                        failures.setdefault((case.operation.label, check), str(exc)[:2000])

            try:
                send()
            except hypothesis.errors.Unsatisfiable:  # a route without parameters has no invalid request
                assert mode is schemathesis.GenerationMode.NEGATIVE
    return sent, failures


def test_generated_requests_find_no_failure(served):
    app, url = served
    schema = schemathesis.openapi.from_dict(app.openapi())
    sent, failures = _fuzz(schema, url, EXAMPLES)
    print(f"schema-driven fuzz: {sent} requests, {len(failures)} distinct failures")
    report = "\n\n".join(f"{route}: {check}\n{text}" for (route, check), text in failures.items())
    assert not failures, f"{len(failures)} distinct failures in {sent} requests:\n{report}"
    assert sent >= 7 * EXAMPLES  # every route was reached (small parameter spaces end early)


def _validate(app, path: str, method: str, response: httpx.Response) -> None:
    schema = schemathesis.openapi.from_dict(app.openapi())
    response.request.read()  # a multipart request streams; the validator reads it again
    schema[path][method].validate_response(response)  # raises on a non-conforming answer


def test_a_scored_image_and_its_stored_result_conform_to_the_schema(served):
    app, url = served
    image = png_bytes(np.random.default_rng(0).integers(0, 255, (20, 20, 3), dtype=np.uint8))
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        for kind in ("png", "raw", None):
            params = {"map": kind} if kind else {}
            r = client.post("/v1/models/toy/score", params=params, files=[("images", ("a.png", image))])
            assert r.status_code == 200, r.text
            _validate(app, "/v1/models/{name}/score", "POST", r)
            assert ("map" in r.json()["results"][0]) == (kind == "raw")
        result_id = r.json()["results"][0]["id"]
        for path, route in ((f"/v1/results/{result_id}", "/v1/results/{result_id}"), ("/v1/results", "/v1/results")):
            r = client.get(path)
            assert r.status_code == 200
            _validate(app, route, "GET", r)
        r = client.get("/v1/models")
        _validate(app, "/v1/models", "GET", r)
        assert r.json()["models"][0]["name"] == "toy"


def test_the_audit_routes_answer_as_documented(served):
    app, url = served
    rng = np.random.default_rng(1)
    files = [("images", (f"{i}.png", png_bytes(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)))) for i in range(4)]
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        scored = client.post("/v1/models/toy/score", files=files).json()["results"]
        queue = client.get("/v1/models/toy/audit")
        _validate(app, "/v1/models/{name}/audit", "GET", queue)
        for i, res in enumerate(scored):
            r = client.post(f"/v1/results/{res['id']}/review", json={"label": "defect" if i == 0 else "normal"})
            _validate(app, "/v1/results/{result_id}/review", "POST", r)
        r = client.get(f"/v1/results/{scored[0]['id']}/image")
        _validate(app, "/v1/results/{result_id}/image", "GET", r)
        r = client.post("/v1/models/toy/recalibrate", json={"fpr": 0.5})
        assert r.status_code == 201, r.text
        _validate(app, "/v1/models/{name}/recalibrate", "POST", r)
        for path in ("calibrations", "false-alarm-rate"):
            r = client.get(f"/v1/models/toy/{path}")
            _validate(app, f"/v1/models/{{name}}/{path}", "GET", r)
        too_few = client.post("/v1/models/toy/recalibrate", json={"fpr": 0.01})
        assert too_few.status_code == 409
        _validate(app, "/v1/models/{name}/recalibrate", "POST", too_few)


def test_every_route_documents_its_refusals(served):
    app, _ = served
    paths = app.openapi()["paths"]
    codes = {(path, method): set(op["responses"]) for path, ops in paths.items() for method, op in ops.items()}
    assert codes[("/v1/models/{name}/score", "post")] >= {"200", "400", "401", "404", "408", "413", "422", "500", "503"}
    assert codes[("/v1/results/{result_id}", "get")] >= {"200", "401", "404", "422"}
    assert codes[("/v1/results", "get")] >= {"200", "401", "422"}
    assert codes[("/readyz", "get")] >= {"200", "503"}
    assert codes[("/v1/results/{result_id}/review", "post")] >= {"200", "401", "404", "422"}
    assert codes[("/v1/models/{name}/recalibrate", "post")] >= {"201", "401", "404", "409", "422"}
    for route in ("calibrations", "false-alarm-rate", "audit"):
        assert codes[(f"/v1/models/{{name}}/{route}", "get")] >= {"200", "401", "404", "422"}
    for probe in ("/healthz", "/readyz"):  # answered without the key
        assert "401" not in codes[(probe, "get")] and "security" not in paths[probe]["get"]
    assert paths["/v1/models"]["get"]["security"] == [{"apiKey": []}]


@pytest.mark.parametrize(
    ("path", "params", "where"),
    [
        ("/v1/results", {"since": "-69"}, "since"),  # a number is not an ISO 8601 time
        ("/v1/results", {"since": "1700000000"}, "since"),
        ("/v1/results", {"since": "1.8e-285"}, "since"),  # an exponent is a number too (found by make fuzz)
        ("/v1/results", {"since": "nan"}, "since"),
        ("/v1/results", {"verdic": "normal"}, "verdic"),  # a misspelt filter is not ignored
        ("/v1/results", [("model", "a"), ("model", "b")], "model"),  # a repeat is not read as its last value
        ("/v1/results", {"model": "../x"}, "model"),
        ("/v1/models", {"x": "1"}, "x"),
    ],
)
def test_parameters_are_validated_as_documented(served, path, params, where):
    _, url = served
    r = httpx.get(url + path, params=params, headers=AUTH, timeout=60)
    assert r.status_code == 422, r.text
    assert any(where in err["loc"] for err in r.json()["detail"])


def test_images_are_required_one_to_max_images(served):
    _, url = served
    image = png_bytes(np.zeros((20, 20, 3), np.uint8))
    with httpx.Client(base_url=url, headers=AUTH, timeout=60) as client:
        none = client.post("/v1/models/toy/score", files=[("other", ("a.png", image))])
        many = client.post("/v1/models/toy/score", files=[("images", (f"{i}.png", image)) for i in range(5)])
        bad_name = client.post("/v1/models/..%20x/score", files=[("images", ("a.png", image))])
    assert none.status_code == many.status_code == 422
    assert bad_name.status_code in (404, 422) and "detail" in bad_name.json()
