"""Finding 9: hostile input got 500s. Each case is replayed through the real app and must get a 4xx
with a field error (JSON) or a form page with the error, and leave every business table unchanged."""

from __future__ import annotations

import copy

import pytest

from tests.admin.conftest import csrf
from tests.integration.conftest import PROGRAM
from tests.security.conftest import auth, row_counts


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def nested_json_text(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def program(**overrides) -> dict:
    body = copy.deepcopy(PROGRAM)
    body["slug"] = "hostile"
    body.update(overrides)
    return body


def reward_amount(amount: str) -> list[dict]:
    return [{"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": amount, "currency": "USD"}}]


def assert_field_error(resp, *, status=400):
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:300])
    error = resp.json["error"]
    assert error.get("fields"), error
    return error["fields"]


def test_deeply_nested_json_on_the_api_is_a_400(client, rt, api_key):
    before = row_counts(rt)
    text = '{"name": "x", "slug": "deep", "enrolment": ' + nested_json_text(100_000) + "}"
    resp = client.post("/api/v1/programs", data=text, headers={**auth(api_key), "Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json["error"]["fields"]
    for depth in (200, 900):
        resp = client.post("/api/v1/programs", json=program(enrolment={"kind": "api", "x": nested(depth)}), headers=auth(api_key))
        assert_field_error(resp)
    assert row_counts(rt) == before


def test_deeply_nested_json_on_the_pipedrive_webhook_is_a_400(client, rt, world):
    before = row_counts(rt)
    resp = client.post(f"/webhooks/pipedrive/{world.connection.id}", data=nested_json_text(100_000),
                       headers={"Content-Type": "application/json"})
    assert 400 <= resp.status_code < 500
    assert row_counts(rt) == before


def test_a_rule_with_5000_nested_parentheses_is_a_field_error(client, rt, api_key):
    before = row_counts(rt)
    rule = "(" * 5000 + "Opportunity.StageName == 'Closed Won'" + ")" * 5000
    fields = assert_field_error(client.post("/api/v1/programs", json=program(rule=rule), headers=auth(api_key)))
    assert "rule" in fields
    assert row_counts(rt) == before


@pytest.mark.parametrize("amount", ["1E+1000000", "9" * 5000, "1e308", "NaN", "Infinity", "-Infinity", "1e-1000000"])
def test_hostile_amounts_are_field_errors(client, rt, api_key, amount):
    before = row_counts(rt)
    resp = client.post("/api/v1/programs", json=program(reward_rules=reward_amount(amount)), headers=auth(api_key))
    assert_field_error(resp)
    assert row_counts(rt) == before


@pytest.mark.parametrize("value", ["Ada \ud800", "Ada\x00", "Ada\x1b[31m", "Ada\u202e", "Ada\x7f"])
def test_surrogates_and_control_characters_in_names_and_emails(client, rt, world, api_key, value):
    before = row_counts(rt)
    resp = client.post("/api/v1/programs", json=program(name=value), headers=auth(api_key))
    assert "name" in assert_field_error(resp)
    resp = client.post("/api/v1/advocates", json={"program_id": world.program.id, "name": value, "email": "ada@x.test"},
                       headers=auth(api_key))
    assert "name" in assert_field_error(resp)
    local = value.replace(" ", "")
    resp = client.post("/api/v1/advocates", json={"program_id": world.program.id, "name": "Ada", "email": f"{local}@x.test"},
                       headers=auth(api_key))
    assert "email" in assert_field_error(resp)
    assert row_counts(rt) == before


@pytest.mark.parametrize("query", ["until=9999-12-31T23:59:59", "since=0001-01-01T00:00:00", "until=9999-12-31",
                                   "until=2026-13-01"])
def test_out_of_range_dates_on_the_api_are_field_errors(client, api_key, query):
    for url in ("/api/v1/audit", "/api/v1/reports/summary"):
        resp = client.get(f"{url}?{query}", headers=auth(api_key))
        assert_field_error(resp)


@pytest.mark.parametrize("url", ["/admin/audit", "/admin/reports"])
def test_out_of_range_dates_in_the_console_are_not_a_500(admin_client, url):
    for query in ("until=9999-12-31T23:59:59", "until=9999-12-31", "since=0001-01-01"):
        resp = admin_client.get(f"{url}?{query}")
        assert resp.status_code in (200, 400), (url, query, resp.status_code)


@pytest.mark.parametrize("url", ["/admin/audit", "/admin/ledger", "/admin/review", "/admin/outbox"])
def test_a_huge_page_number_in_the_console_is_not_a_500(admin_client, url):
    assert admin_client.get(f"{url}?page=9999999999999999999999").status_code in (200, 400)


def test_crlf_in_the_login_next_is_refused(client, rt, people):
    client.get("/admin/login")
    resp = client.post("/admin/login", data={"email": "admin@acme.test", "password": "correct horse battery",
                                             "csrf_token": csrf(client), "next": "/admin/\r\nSet-Cookie: x=1"})
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/admin/") and "Set-Cookie" not in resp.headers["Location"]
    page = client.get("/admin/login?next=/admin/%0d%0aX-Evil:%201")
    assert page.status_code == 200


def test_crlf_in_a_console_back_address_is_refused(admin_client, world):
    from tests.admin.conftest import post

    resp = post(admin_client, f"/admin/connections/{world.connection.id}/sync", {"back": "/admin/ledger\r\nX-Evil: 1"})
    assert resp.status_code == 302 and resp.headers["Location"].endswith("/admin/connections")
    resp = post(admin_client, f"/admin/connections/{world.connection.id}/sync", {"back": "/admin/ledger?status=approved"})
    assert resp.headers["Location"].endswith("/admin/ledger?status=approved")


def test_pipedrive_connection_without_token_or_app_is_a_field_error(client, rt, api_key):
    before = row_counts(rt)
    resp = client.post("/pipedrive/connections", json={"name": "PD"}, headers=auth(api_key))
    assert 400 <= resp.status_code < 500, resp.status_code
    assert resp.json["error"]["fields"]
    assert row_counts(rt) == before


@pytest.mark.parametrize("name", ["Bad%ED%A0%80", "Bad%00", "Bad%1B%5B31m", "Bad%E2%80%AE"])
def test_admin_program_form_refuses_control_characters_in_names(admin_client, rt, world, name):
    """Raw bytes as an attacker sends them (an encoded lone surrogate, NUL, escape, a bidi override)."""
    before = row_counts(rt)
    body = f"name={name}&slug=bad-name&csrf_token={csrf(admin_client)}"
    resp = admin_client.post("/admin/programs/new", data=body, content_type="application/x-www-form-urlencoded")
    assert resp.status_code < 500
    assert row_counts(rt) == before
