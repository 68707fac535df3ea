"""(d) Bad input, past validation: each case is a valid request (API bodies, the public form, a Salesforce
Outbound Message envelope, a Pipedrive webhook) whose free-text and numeric fields are fuzzed inside an
otherwise correct skeleton, so the handlers' own logic runs, not just the first validator. Asserted: no
5xx ever, and at least MIN_ACCEPTED of the cases accepted (2xx/3xx) per entry point, so the fuzz really
reaches the code behind validation. Short mode ~60 cases per entry point; --long ~1,000."""

from __future__ import annotations

import itertools
import json
import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refstage.domain.referrals import AdvocateSource
from refstage.services import enrolment, tenants
from tests.integration.conftest import ADMIN, PROGRAM, fake_crm, world  # noqa: F401 - fixtures
from tests.reliability.test_reliability_bad_input import (PAYLOADS, _clean, fuzz_app,  # noqa: F401 - fixture
                                                        pipedrive_webhook_connection)

MIN_ACCEPTED = 0.30

# Mostly what people type (any script, emoji, punctuation), some hostile payloads and control characters.
plain = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=120)
free_text = st.one_of(plain, plain, plain, st.sampled_from(PAYLOADS), st.text(max_size=60))
amount = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100000"), places=2).map(str),
    st.integers(min_value=1, max_value=10**6).map(str),
    st.sampled_from(["1E+1000000", "9" * 5000, "1e308", "NaN", "Infinity", "-5", "0", "0.001", "1,5", "", "12abc"]))
deal_value = st.one_of(st.integers(min_value=0, max_value=10**9), st.floats(allow_nan=True, allow_infinity=True),
                       st.decimals(allow_nan=False, allow_infinity=False).map(str), st.none(), st.sampled_from(["1e308", "x"]))


@pytest.fixture
def cases(long_mode):
    return 1000 if long_mode else 60


class Tally:
    def __init__(self) -> None:
        self.statuses: list[int] = []

    def add(self, resp) -> None:
        _clean(resp)
        self.statuses.append(resp.status_code)

    def check(self, record: dict, label: str) -> None:
        accepted = sum(1 for s in self.statuses if s < 400)
        share = accepted / max(1, len(self.statuses))
        record[label] = {"cases": len(self.statuses), "accepted": accepted, "share": round(share, 3),
                         "statuses": sorted(set(self.statuses))}
        assert share >= MIN_ACCEPTED, record[label]


def _settings(cases: int):
    return settings(max_examples=cases, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def test_api_bodies_fuzzed_inside_valid_skeletons(fuzz_app, rt, world, cases, record):
    client = fuzz_app.test_client()
    headers = {"Authorization": f"Bearer {tenants.create_api_key(rt, world.tenant.id, 'fuzz', ADMIN)}"}
    advocate, _ = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email="ada@customer.test",
                                           source=AdvocateSource.API, actor=ADMIN)
    serial = itertools.count()
    tallies = {name: Tally() for name in ("advocates", "referrals", "programs")}

    @_settings(cases)
    @given(name=free_text, local=st.from_regex(r"[a-z0-9][a-z0-9.+_-]{0,20}", fullmatch=True), company=free_text,
           phone=st.one_of(st.none(), st.from_regex(r"\+?[0-9 ()-]{5,20}", fullmatch=True), free_text),
           reward=amount, holding=st.one_of(st.integers(min_value=0, max_value=365), st.integers()), headline=free_text)
    def run(name, local, company, phone, reward, holding, headline):
        n = next(serial)
        email = f"{local}.{n}@fuzz.example"
        tallies["advocates"].add(client.post("/api/v1/advocates", json={"program_id": world.program.id, "name": name,
                                                                          "email": email}, headers=headers))
        tallies["referrals"].add(client.post("/api/v1/referrals", json={
            "code": advocate.code, "name": name, "email": f"friend.{email}", "company": company, "phone": phone,
            "consent": True}, headers=headers))
        body = {**PROGRAM, "connection_id": world.connection.id, "name": name, "slug": f"fuzz-{n}", "holding_days": holding,
                "reward_rules": [{"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": reward, "currency": "USD"}}],
                "landing": {"headline": headline}}
        tallies["programs"].add(client.post("/api/v1/programs", json=body, headers=headers))

    run()
    for label, tally in tallies.items():
        tally.check(record, label)


def test_public_form_fuzzed_inside_a_valid_post(fuzz_app, rt, world, cases, record):
    advocate, _ = enrolment.enrol_advocate(rt, world.tenant.id, world.program.id, name="Ada", email="ada@customer.test",
                                           source=AdvocateSource.API, actor=ADMIN)
    client = fuzz_app.test_client()
    page = client.get(f"/r/{advocate.code}").get_data(as_text=True)
    tokens = dict(re.findall(r'name="(csrf_token|form_ts)"[^>]*value="([^"]*)"', page))
    serial = itertools.count()
    tally = Tally()

    @_settings(cases)
    @given(name=free_text, local=st.from_regex(r"[a-z0-9][a-z0-9.+_'-]{0,20}", fullmatch=True), company=free_text,
           phone=st.one_of(st.just(""), st.from_regex(r"\+?[0-9 ()-]{5,20}", fullmatch=True), free_text))
    def run(name, local, company, phone):
        email = f"{local}.{next(serial)}@prospect.example"
        tally.add(client.post(f"/r/{advocate.code}", data={**tokens, "name": name, "email": email, "company": company,
                                                           "phone": phone, "consent": "yes", "website": ""}))

    run()
    tally.check(record, "public_form")


def test_outbound_message_fuzzed_inside_a_valid_envelope(client, rt, world, cases, record):
    envelope = ('<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                '<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org}</OrganizationId>'
                '<Notification><Id>04l{n:015d}</Id><sObject xsi:type="sf:Opportunity" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>006{n:015d}</sf:Id><sf:Name>{name}</sf:Name>'
                '<sf:StageName>{stage}</sf:StageName><sf:Amount>{amount}</sf:Amount>'
                '<sf:SystemModstamp>2026-11-02T09:{mm:02d}:00.000Z</sf:SystemModstamp></sObject></Notification>'
                '</notifications></soapenv:Body></soapenv:Envelope>')

    def esc(value: str) -> str:
        # XML 1.0 cannot carry most control characters at all; a CRM never sends them.
        value = "".join(ch for ch in value if ch in "\t\n\r" or (ord(ch) >= 32 and not 0xD800 <= ord(ch) <= 0xDFFF))
        return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    serial = itertools.count(1)
    tally = Tally()
    from urllib.parse import urlsplit

    from refstage.services.push_keys import outbound_message_url

    url = urlsplit(outbound_message_url(rt, world.tenant.id, world.connection.id)).path  # past the key check

    @_settings(cases)
    @given(name=free_text, stage=st.one_of(st.sampled_from(["Closed Won", "Prospecting", "Closed Lost"]), free_text),
           amount_text=amount)
    def run(name, stage, amount_text):
        n = next(serial)
        body = envelope.format(org=world.connection.external_org_id, n=n, name=esc(name), stage=esc(stage),
                               amount=esc(amount_text), mm=n % 60)
        tally.add(client.post(url, data=body.encode(), headers={"Content-Type": "text/xml"}))

    run()
    tally.check(record, "outbound_message")
    # The worker's side: the stored pushes go through the event processing (fuzzed names, stages and
    # amounts included) without an exception.
    from refstage.services import sync

    record["outbound_message"]["processed"] = sync.drain_events(rt, world.tenant.id, world.connection.id)


def test_pipedrive_webhook_fuzzed_inside_a_valid_delivery(client, rt, world, cases, record):
    conn, auth = pipedrive_webhook_connection(rt, world.tenant.id)
    serial = itertools.count(1)
    tally = Tally()

    @_settings(cases)
    @given(title=free_text, value=deal_value, status=st.one_of(st.sampled_from(["open", "won", "lost"]), free_text),
           entity=st.sampled_from(["deal", "person"]), person_name=free_text)
    def run(title, value, status, entity, person_name):
        n = next(serial)
        data = ({"id": n, "title": title, "value": value, "currency": "USD", "status": status,
                 "update_time": "2026-11-02T09:00:00Z"} if entity == "deal"
                else {"id": n, "name": person_name, "update_time": "2026-11-02T09:00:00Z"})
        body = {"meta": {"id": f"evt-{n}", "action": "change", "entity": entity, "entity_id": str(n), "version": "2.0",
                         "timestamp": "2026-11-02T09:00:00Z"}, "data": data, "previous": {}}
        tally.add(client.post(f"/webhooks/pipedrive/{conn.id}", data=json.dumps(body),
                              headers={"Content-Type": "application/json", "Authorization": auth}))

    run()
    tally.check(record, "pipedrive_webhook")
