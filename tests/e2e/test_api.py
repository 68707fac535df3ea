"""The JSON API over HTTP through the Flask app: auth, validation, idempotency, tenant isolation."""

import pytest

from refstage.domain.audit import Actor
from refstage.services import tenants

PROGRAM = {
    "name": "Customers", "slug": "customers", "enrolment": {"kind": "api"},
    "rule": "Opportunity.StageName == 'Closed Won'",
    "reward_rules": [{"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"}}],
    "owner": {"name": "Riley", "email": "riley@acme.test"},
}


@pytest.fixture
def keys(rt):
    a = tenants.create_tenant(rt, "Acme", "acme")
    b = tenants.create_tenant(rt, "Beta", "beta")
    return (tenants.create_api_key(rt, a.id, "crm", Actor.system()), tenants.create_api_key(rt, b.id, "crm", Actor.system()))


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def _live_program(client, key):
    resp = client.post("/api/v1/programs", json=PROGRAM, headers=auth(key))
    assert resp.status_code == 201, resp.json
    pid = resp.json["id"]
    assert client.post(f"/api/v1/programs/{pid}/status", json={"status": "live"}, headers=auth(key)).status_code == 200
    return pid


def test_health(client):
    resp = client.get("/health")
    assert resp.status_code == 200 and resp.json["checks"]["database"] == "ok"


def test_api_requires_a_valid_key(client, keys):
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Bearer rs_abc_wrong"},
                    {"Authorization": keys[0]}):
        resp = client.get("/api/v1/programs", headers=headers)
        assert resp.status_code == 401 and resp.json["error"]["code"] == "unauthorized"
    assert client.get("/api/v1/programs", headers=auth(keys[0])).status_code == 200


def test_program_validation_errors_are_json_with_fields(client, keys):
    resp = client.post("/api/v1/programs", json={**PROGRAM, "rule": "Opportunity.StageName ==", "slug": "Bad"}, headers=auth(keys[0]))
    assert resp.status_code == 400
    assert "slug" in resp.json["error"]["fields"]
    resp = client.post("/api/v1/programs", json={**PROGRAM, "rule": "Opportunity.StageName =="}, headers=auth(keys[0]))
    assert resp.status_code == 400 and "rule" in resp.json["error"]["fields"]
    resp = client.post("/api/v1/programs", data="not json", headers={**auth(keys[0]), "Content-Type": "application/json"})
    assert resp.status_code == 400
    resp = client.post("/api/v1/programs/xyz/status", json={"status": "live"}, headers=auth(keys[0]))
    assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found"


def test_referral_flow_over_http(client, keys, rt):
    pid = _live_program(client, keys[0])
    resp = client.post("/api/v1/advocates", json={"program_id": pid, "name": "Ada", "email": "Ada@Customer.test"}, headers=auth(keys[0]))
    assert resp.status_code == 201
    advocate = resp.json
    assert advocate["email"] == "ada@customer.test" and advocate["link"].endswith("/r/" + advocate["code"])
    again = client.post("/api/v1/advocates", json={"program_id": pid, "name": "Ada", "email": "ada@customer.test"}, headers=auth(keys[0]))
    assert again.status_code == 200 and again.json["id"] == advocate["id"]

    body = {"code": advocate["code"], "name": "Fred", "email": "fred@prospect.test", "consent": True}
    one = client.post("/api/v1/referrals", json=body, headers={**auth(keys[0]), "Idempotency-Key": "abc"})
    two = client.post("/api/v1/referrals", json=body, headers={**auth(keys[0]), "Idempotency-Key": "abc"})
    assert one.status_code == 201 and two.json["id"] == one.json["id"]
    listed = client.get("/api/v1/referrals", headers=auth(keys[0])).json["data"]
    assert [r["id"] for r in listed] == [one.json["id"]]
    got = client.get(f"/api/v1/referrals/{one.json['id']}", headers=auth(keys[0]))
    assert got.status_code == 200 and got.json["status"] == "captured" and got.json["rewards"] == []

    bad = client.post("/api/v1/referrals", json={**body, "email": "nope", "consent": False}, headers=auth(keys[0]))
    assert bad.status_code == 400 and {"email", "consent"} <= set(bad.json["error"]["fields"])
    unknown = client.post("/api/v1/referrals", json={**body, "code": "ZZZZZZZZZ"}, headers=auth(keys[0]))
    assert unknown.status_code == 422 and unknown.json["error"]["code"] == "referral_not_accepted"

    audit = client.get("/api/v1/audit?entity_type=referral", headers=auth(keys[0])).json["data"]
    assert audit and audit[-1]["action"] == "captured"
    report = client.get("/api/v1/reports/summary?group_by=program", headers=auth(keys[0])).json
    assert report["rows"][0]["captured"] == 1 and report["rows"][0]["enrolments"] == 1
    assert client.get("/api/v1/reports/summary?group_by=nonsense", headers=auth(keys[0])).status_code == 400


def test_tenant_b_cannot_touch_tenant_a(client, keys):
    pid = _live_program(client, keys[0])
    adv = client.post("/api/v1/advocates", json={"program_id": pid, "name": "Ada", "email": "ada@customer.test"}, headers=auth(keys[0])).json
    ref = client.post("/api/v1/referrals", json={"code": adv["code"], "name": "F", "email": "f@p.test", "consent": True},
                      headers=auth(keys[0])).json
    b = auth(keys[1])
    assert client.get(f"/api/v1/programs/{pid}", headers=b).status_code == 404
    assert client.patch(f"/api/v1/programs/{pid}", json={"name": "x"}, headers=b).status_code == 404
    assert client.get(f"/api/v1/referrals/{ref['id']}", headers=b).status_code == 404
    assert client.post("/api/v1/advocates", json={"program_id": pid, "name": "E", "email": "e@x.test"}, headers=b).status_code == 404
    # Tenant B cannot file a referral under tenant A's code either.
    resp = client.post("/api/v1/referrals", json={"code": adv["code"], "name": "F", "email": "g@p.test", "consent": True}, headers=b)
    assert resp.status_code == 422
    assert client.get("/api/v1/referrals", headers=b).json["data"] == []
    seen_by_b = {e["entity_id"] for e in client.get("/api/v1/audit", headers=b).json["data"]}
    assert seen_by_b and not seen_by_b & {pid, adv["id"], ref["id"]}


def test_unknown_routes_and_methods_are_json(client, keys):
    assert client.get("/api/v1/nope", headers=auth(keys[0])).json["error"]["code"] == "not_found"
    assert client.delete("/api/v1/programs", headers=auth(keys[0])).status_code == 405
