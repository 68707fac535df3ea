"""The OpenAPI document: valid, complete (every /api/v1 route), served as JSON and as a docs page, and
used to fuzz the JSON API in-process (schemathesis over WSGI): no 5xx, no stack traces."""

from __future__ import annotations

import re

import hypothesis
import pytest
from hypothesis import HealthCheck, settings
from openapi_spec_validator import validate

from refstage.domain.audit import Actor
from refstage.services import tenants

FUZZ_CASES = 400  # total across operations for `make test`; the slow variant runs >= 10,000


def test_document_is_valid_openapi_3(client):
    resp = client.get("/api/openapi.json")
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    spec = resp.json
    validate(spec)
    assert spec["openapi"].startswith("3.") and spec["servers"][0]["url"] == "https://refer.example.test/api/v1"
    assert {"bearerAuth", "apiKeyHeader"} <= set(spec["components"]["securitySchemes"])
    # Generated from the marshmallow schemas: the request schema carries the validation rules.
    referral_in = spec["components"]["schemas"]["ReferralIn"]
    assert set(referral_in["required"]) == {"code", "name", "email", "consent"}
    assert referral_in["properties"]["name"]["maxLength"] == 200


def test_every_api_route_is_documented(app, client):
    spec = client.get("/api/openapi.json").json
    documented = {(path, method.upper()) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len("/api/v1"):])
            routes |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == documented


def test_docs_page_is_readable_html_without_cdn(client):
    resp = client.get("/api/docs")
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    for text in ("Refstage API reference", "/referrals/{referral_id}", "/webhooks", "Refstage-Signature", "ReferralIn"):
        assert text in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing loaded from elsewhere


# --- fuzzing ----------------------------------------------------------------------------------------------------
@pytest.fixture
def api_key(rt):
    tenant = tenants.create_tenant(rt, "Fuzz", "fuzz")
    return tenants.create_api_key(rt, tenant.id, "fuzz", Actor.system())


def _fuzz(app, api_key, total_cases: int) -> int:
    import schemathesis

    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    per_operation = max(1, total_cases // len(operations))
    ran = 0
    failures: list[str] = []

    for operation in operations:
        @settings(max_examples=per_operation, deadline=None, database=None, derandomize=True, print_blob=False,
                  suppress_health_check=list(HealthCheck), phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate])
        @hypothesis.given(case=operation.as_strategy())
        def run(case):
            nonlocal ran
            ran += 1
            headers = {"Authorization": f"Bearer {api_key}"} if ran % 10 else {}
            response = case.call(headers=headers)
            text = response.text
            if response.status_code >= 500 or "Traceback" in text or 'File "/' in text:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {text[:300]}")

        run()
    assert failures == [], failures[:5]
    return ran


# services/reports.py (not this folder's) still calls Result.tuples(), deprecated in SQLAlchemy 2.1: a warning in
# production, an error under filterwarnings=error. Reported; ignored here so the fuzzer looks for real failures.
TUPLES_DEPRECATION = "ignore:The Result.tuples:sqlalchemy.exc.SADeprecationWarning"


@pytest.mark.filterwarnings(TUPLES_DEPRECATION)
def test_fuzz_the_api_from_its_openapi_document(app, api_key):
    assert _fuzz(app, api_key, FUZZ_CASES) >= FUZZ_CASES * 0.5


@pytest.mark.slow
@pytest.mark.filterwarnings(TUPLES_DEPRECATION)
def test_fuzz_the_api_long(app, api_key):
    assert _fuzz(app, api_key, 10_400) >= 10_000
