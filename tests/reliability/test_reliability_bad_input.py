"""(d) Bad input: property-based fuzzing of the public form, the JSON API and both push receivers, with
SOQL-injection and XSS payloads in every free-text field. No 5xx, no stack traces to clients, payloads
escaped in pages and stored literally (never interpreted) in Salesforce. Short mode ~600 cases; --long
runs over 10,000 (plus the schema-driven OpenAPI fuzz in tests/web/test_openapi.py)."""

from __future__ import annotations

import base64
import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refstage.domain.connections import ConnectionStatus, CrmConnection, CrmKind
from refstage.domain.referrals import AdvocateSource
from refstage.services import enrolment, tenants
from refstage.web.app import create_app
from tests.integration.conftest import ADMIN, fake_crm, world  # noqa: F401 - fixtures

PAYLOADS = [
    "' OR Name != '", "\\' OR 1=1 --", "'; DELETE FROM Lead; --", "x' AND Id IN (SELECT Id FROM User) AND Name='",
    "<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "javascript:alert(1)", "{{7*7}}", "${7*7}",
    "=HYPERLINK(\"http://evil\")", "+SUM(1,2)", "@cmd", "\u202eevil", "\x00nul", "a" * 5000, "😀" * 50, "",
    "<![CDATA[x]]>", "&lt;&gt;", "%00", "../../etc/passwd", "\r\nSet-Cookie: x=1",
]
text = st.one_of(st.sampled_from(PAYLOADS), st.text(max_size=300))
anything = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), text),
                        lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(text, inner, max_size=5)),
                        max_leaves=20)
RAW_SCRIPT = re.compile(rb"<script>alert\(1\)</script>|<img src=x onerror", re.I)


def _clean(resp) -> None:
    assert resp.status_code < 500, resp.data[:500]
    assert b"Traceback" not in resp.data and b'File "/' not in resp.data
    if resp.mimetype == "text/html":
        assert not RAW_SCRIPT.search(resp.data), "an XSS payload came back unescaped"


@pytest.fixture
def fuzz_app(rt):
    app = create_app(runtime=rt, test_config={
        "TESTING": True, "REFSTAGE_MIN_FILL_SECONDS": 0,
        "REFSTAGE_RATE_LIMITS": {k: (10**9, 60) for k in ("view_ip", "referral_ip", "referral_code", "join_ip",
                                                            "status_ip", "status_email")}})
    return app


@pytest.fixture
def cases(long_mode):
    return 2600 if long_mode else 150


def test_public_form(fuzz_app, rt, world, cases, record):
    advocate, _ = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email="ada@customer.test",
                                           source=AdvocateSource.API, actor=ADMIN)
    client = fuzz_app.test_client()
    page = client.get(f"/r/{advocate.code}").get_data(as_text=True)
    fields = dict(re.findall(r'name="(csrf_token|form_ts)"[^>]*value="([^"]*)"', page))
    seen = {"n": 0}

    @settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(name=text, email=st.one_of(text, st.emails()), company=text, phone=text, consent=st.sampled_from(["yes", "", "no"]),
           code=st.one_of(st.just(advocate.code), text))
    def run(name, email, company, phone, consent, code):
        seen["n"] += 1
        path = f"/r/{code}" if "/" not in code and "?" not in code and "#" not in code and code.strip() else f"/r/{advocate.code}"
        resp = client.post(path, data={**fields, "name": name, "email": email, "company": company, "phone": phone,
                                       "consent": consent, "website": ""})
        _clean(resp)

    run()
    record.update(cases=seen["n"])


def test_json_api(client, rt, world, cases, record):
    key = tenants.create_api_key(rt, world.tenant.id, "fuzz", ADMIN)
    advocate, _ = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email="ada@customer.test",
                                           source=AdvocateSource.API, actor=ADMIN)
    headers = {"Authorization": f"Bearer {key}"}
    seen = {"n": 0}

    @settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=st.one_of(anything, st.fixed_dictionaries(
        {"code": st.one_of(st.just(advocate.code), text), "name": text, "email": text, "consent": st.booleans()},
        optional={"company": text, "phone": text})),
        path=st.sampled_from(["/api/v1/referrals", "/api/v1/advocates", "/api/v1/programs"]))
    def run(body, path):
        seen["n"] += 1
        resp = client.post(path, data=json.dumps(body), headers={**headers, "Content-Type": "application/json"})
        _clean(resp)
        assert resp.is_json

    run()
    record.update(cases=seen["n"])


def test_outbound_message_receiver(client, rt, world, cases, record):
    from urllib.parse import urlsplit

    from refstage.services.push_keys import outbound_message_url

    seen = {"n": 0}
    path = urlsplit(outbound_message_url(rt, world.tenant.id, world.connection.id)).path  # past the key check
    envelope = ('<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                '<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org}</OrganizationId>'
                '<Notification><Id>{nid}</Id><sObject xsi:type="sf:{obj}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>{rid}</sf:Id><sf:StageName>{stage}</sf:StageName>'
                '<sf:SystemModstamp>{ts}</sf:SystemModstamp></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>')

    def esc(v: str) -> str:
        return v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    @settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(raw=st.one_of(st.binary(max_size=400), text.map(str.encode),
                         st.builds(lambda org, nid, obj, rid, stage, ts: envelope.format(
                             org=org, nid=esc(nid), obj=obj, rid=esc(rid), stage=esc(stage), ts=esc(ts)).encode(),
                             org=st.sampled_from([world.connection.external_org_id, "00D000000000000BAD"]), nid=text,
                             obj=st.sampled_from(["Opportunity", "Lead", "Account", "Nope"]), rid=text, stage=text,
                             ts=st.one_of(text, st.just("2026-11-02T09:00:00.000Z")))))
    def run(raw):
        seen["n"] += 1
        resp = client.post(path, data=raw,
                           headers={"Content-Type": "text/xml"})
        _clean(resp)

    run()
    record.update(cases=seen["n"])


def pipedrive_webhook_connection(rt, tenant_id: str) -> tuple[CrmConnection, str]:
    """An active Pipedrive connection whose webhooks use Basic auth u:p; returns it and the right header."""
    conn = CrmConnection(id=rt.new_id(), tenant_id=tenant_id, kind=CrmKind.PIPEDRIVE, name="pd",
                         status=ConnectionStatus.ACTIVE, external_org_id="123")
    with rt.uow(tenant_id) as uow:
        uow.connections.add(conn)
        uow.connections.store_credentials(conn.id, rt.vault.seal({"kind": "api_token", "api_token": "t",
                                                                    "api_domain": "https://x.test", "webhook": {"user": "u", "password": "p"}}))
        uow.commit()
    return conn, "Basic " + base64.b64encode(b"u:p").decode()


def test_pipedrive_webhook_receiver(client, rt, world, cases, record):
    conn, good = pipedrive_webhook_connection(rt, world.tenant.id)
    seen = {"n": 0}

    @settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(body=st.one_of(anything, st.fixed_dictionaries({"meta": anything, "data": anything, "previous": anything})),
           auth=st.sampled_from([good, good, "Basic " + base64.b64encode(b"u:wrong").decode(), "", "Bearer x"]))
    def run(body, auth):
        seen["n"] += 1
        resp = client.post(f"/webhooks/pipedrive/{conn.id}", data=json.dumps(body),
                           headers={"Content-Type": "application/json", "Authorization": auth})
        _clean(resp)
        if auth != good:
            assert resp.status_code == 401

    run()
    record.update(cases=seen["n"])


def test_injection_payloads_reach_salesforce_as_literal_text(rt, client, emu):
    """The friend's words become Lead fields byte for byte: nothing is interpreted as SOQL or markup."""
    from refstage.services.referrals import FriendInput, capture_referral, route_referral
    from tests.salesforce.helpers import OrgAdmin, setup_world

    emu.control.seed(contacts=3, seed=1)
    tenant_id, _connection_id, program_id = setup_world(rt, client, {"retry_backoff_seconds": 0.01})
    enrolment.run_enrolment(rt, tenant_id, program_id)
    with rt.uow(tenant_id) as uow:
        advocate = uow.advocates.list(program_id=program_id, limit=1)[0]
    company = "O'Brien \\' OR Name != ' <script>alert(1)</script>"
    friend = FriendInput("Robert'); DROP TABLE Lead;--", "o'hara+x@newco.example", company, None, True)
    referral = capture_referral(rt, advocate.code, friend)
    assert route_referral(rt, tenant_id, referral.id).value == "routed"  # the quote in the email did not break SOQL
    (lead,) = OrgAdmin(emu).query(
        f"SELECT Id, FirstName, LastName, Company, Email FROM Lead WHERE Refstage_Referral_Id__c = '{referral.id}'")
    assert lead["Company"] == company and lead["Email"] == "o'hara+x@newco.example"
    assert f"{lead['FirstName']} {lead['LastName']}" == friend.name
