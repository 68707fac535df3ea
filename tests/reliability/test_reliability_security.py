"""(e) Security: tampered OAuth state or PKCE, push-receiver authentication failures, cross-tenant
access, tokens at rest, key rotation. Each is rejected with no side effects.

Also covered elsewhere, by design of those areas: forged Pipedrive OAuth state and webhook basic auth
(tests/pipedrive/test_reliability.py), API keys and admin sessions across tenants (tests/e2e/test_api.py,
tests/admin/), single-use OAuth state (tests/salesforce/test_push_and_units.py)."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from refstage.adapters.crypto import CredentialsUnreadable, Vault
from refstage.adapters.db import models as m
from refstage.bootstrap import build_runtime
from refstage.domain.audit import Actor
from refstage_devkit.emulators.salesforce.consent import browser_consent
from refstage.services import connections, salesforce_connect, tenants
from refstage.services.maintenance import rotate_credentials
from refstage.services.runtime import RecordingQueue
from refstage.services.sync import run_sync
from tests.salesforce.helpers import setup_world

ADMIN = Actor.system("security test")


def _side_effects(rt) -> dict:
    with rt.session_factory() as s:
        return {
            "events": s.scalar(select(func.count()).select_from(m.CrmEventRow)),
            "active": s.scalar(select(func.count()).select_from(m.ConnectionRow).where(m.ConnectionRow.status == "active")),
            "credentials": s.scalar(select(func.count()).select_from(m.ConnectionRow).where(m.ConnectionRow.credentials.is_not(None))),
            "audit": s.scalar(select(func.count()).select_from(m.AuditRow)),
            "jobs": len(rt.jobs.jobs),
        }


def _start(rt, emu, client):
    from tests.oauth_support import console_session

    tenant = tenants.create_tenant(rt, "Sec", "sec")
    started = salesforce_connect.start_connect(rt, tenant.id, actor=ADMIN, owner=console_session(client, tenant.id),
                                               name="org", login_host=emu.base_url)
    query = {k: v[0] for k, v in parse_qs(urlsplit(browser_consent(started.authorize_url)).query).items()}
    return tenant, started, query


def test_tampered_state_is_refused_without_side_effects(rt, client, emu):
    _, started, query = _start(rt, emu, client)
    before = _side_effects(rt)
    for state in (started.state + "x", started.connection_id + ".forged", "", "not-a-state",
                  f"{rt.new_id()}.{started.state.partition('.')[2]}"):
        r = client.get("/salesforce/oauth/callback", query_string={"code": query["code"], "state": state})
        assert r.status_code == 400, (state, r.data)
    assert _side_effects(rt) == before
    # The untouched answer still works once: tampering did not burn or leak anything.
    assert client.get("/salesforce/oauth/callback", query_string=query).status_code == 200


def test_tampered_pkce_verifier_is_refused_by_the_org(rt, client, emu):
    tenant, started, query = _start(rt, emu, client)
    with rt.uow(tenant.id) as uow:  # an attacker who could swap the stored verifier
        conn = uow.connections.get(started.connection_id)
        pending = rt.vault.open(conn.settings[connections.PENDING_KEY])
        conn.settings[connections.PENDING_KEY] = rt.vault.seal({**pending, "verifier": "A" * 64})
        uow.connections.save(conn)
        uow.commit()
    before = _side_effects(rt)
    r = client.get("/salesforce/oauth/callback", query_string=query)
    assert r.status_code in (400, 502) and b"access_token" not in r.data
    assert _side_effects(rt) == before
    with rt.uow(tenant.id) as uow:
        assert uow.connections.get(started.connection_id).status.value == "pending"


def test_outbound_messages_from_another_org_or_malformed_change_nothing(rt, client, emu):
    tenant_id, connection_id, _ = setup_world(rt, client, {"retry_backoff_seconds": 0.01})
    before = _side_effects(rt)
    envelope = ('<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
                '<notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>{org}</OrganizationId>'
                '<Notification><Id>04l000000000001AAA</Id><sObject xsi:type="sf:Opportunity" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
                '<sf:Id>006000000000009AAA</sf:Id><sf:SystemModstamp>2026-11-02T09:00:00.000Z</sf:SystemModstamp>'
                '</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>')
    bad = [envelope.format(org="00D000000000000BAD"), "<not xml", "",
           '<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>', envelope.format(org="")]
    from urllib.parse import urlsplit

    from refstage.services.push_keys import outbound_message_url

    keyed = urlsplit(outbound_message_url(rt, tenant_id, connection_id)).path
    before = _side_effects(rt)
    for body in bad:
        r = client.post(keyed, data=body, headers={"Content-Type": "text/xml"})
        assert r.status_code >= 400 and b"<Ack>true</Ack>" not in r.data
    other = tenants.create_tenant(rt, "Other", "other")
    for path in (f"/webhooks/salesforce/outbound-message/{other.id}", keyed.replace(connection_id, other.id),
                 f"/webhooks/salesforce/outbound-message/{connection_id}"):
        r = client.post(path, data=envelope.format(org="x"), headers={"Content-Type": "text/xml"})
        assert r.status_code >= 400
    after = _side_effects(rt)
    assert after["events"] == before["events"] and after["jobs"] == before["jobs"]  # nothing stored, nothing queued


def test_tokens_are_unreadable_without_the_key_and_rotation_keeps_working(rt, client, emu, settings, engine):
    tenant_id, connection_id, _ = setup_world(rt, client, {"retry_backoff_seconds": 0.01})
    with rt.session_factory() as s:
        sealed = s.scalar(select(m.ConnectionRow.credentials).where(m.ConnectionRow.id == connection_id))
    tokens = rt.vault.open(sealed)
    assert tokens["access_token"] and tokens["access_token"] not in sealed and tokens["refresh_token"] not in sealed
    with pytest.raises(CredentialsUnreadable):
        Vault([Fernet.generate_key().decode()]).open(sealed)

    old = settings.encryption_keys[0]
    new = Fernet.generate_key().decode()
    rotating = build_runtime(dataclasses.replace(settings, encryption_keys=(new, old)), engine=engine, queue=RecordingQueue())
    assert rotate_credentials(rotating) >= 1
    only_new = build_runtime(dataclasses.replace(settings, encryption_keys=(new,)), engine=engine, queue=RecordingQueue())
    only_new.gateway_factory = None
    assert run_sync(only_new, tenant_id, connection_id).status == "succeeded"  # the org still answers
    with rt.session_factory() as s:
        rotated = s.scalar(select(m.ConnectionRow.credentials).where(m.ConnectionRow.id == connection_id))
    with pytest.raises(CredentialsUnreadable):
        Vault([old]).open(rotated)
