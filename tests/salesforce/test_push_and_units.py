"""Push path (Outbound Message → inbox → process_events → reward), the receiver's refusals, safe SOQL,
and the connect flow's tenancy guard."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import func, select

from refstage.adapters.crm.salesforce import soql
from refstage.adapters.db import models as m
from refstage.domain.errors import InvalidInput
from refstage.domain.programs import FilterCondition
from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.sync import drain_events, run_sync
from tests.salesforce.helpers import OrgAdmin, refer, setup_world

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}


def test_outbound_message_pushes_a_qualification(rt, app, client, emu):
    emu.control.seed(contacts=20, seed=5)
    admin = OrgAdmin(emu)
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)
    run_enrolment(rt, tenant_id, program_id)
    (rid,) = refer(rt, tenant_id, program_id, 1)
    route_referral(rt, tenant_id, rid)
    run_sync(rt, tenant_id, connection_id)
    lead = admin.query("SELECT Id FROM Lead WHERE Refstage_Referral_Id__c != null")[0]
    opp = admin.convert(lead["Id"])["opportunityId"]
    run_sync(rt, tenant_id, connection_id)  # learns the conversion

    # Salesforce posts to a real HTTP endpoint: serve the Flask app on loopback for the emulator to call.
    from werkzeug.serving import make_server
    import threading

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        from refstage.services.push_keys import outbound_message_url

        path = urlsplit(outbound_message_url(rt, tenant_id, connection_id)).path
        url = f"http://127.0.0.1:{server.server_port}{path}"
        emu.control.add_outbound_rule(object="Opportunity", fields=["Id", "StageName", "Amount", "IsWon", "IsClosed",
                                                                     "SystemModstamp"], endpointUrl=url)
        admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 7000}])
        deadline = time.time() + 15
        while time.time() < deadline and not any(d.get("acked") or d.get("status") == 200 for d in emu.control.deliveries()):
            time.sleep(0.1)
    finally:
        server.shutdown()
    deliveries = emu.control.deliveries()
    assert deliveries, "no outbound message was delivered"
    assert ("process_events", {"tenant_id": tenant_id, "connection_id": connection_id}) in rt.jobs.jobs
    with rt.uow(tenant_id) as uow:
        events = uow.session.scalar(select(func.count()).select_from(m.CrmEventRow))
    assert events >= 1
    assert drain_events(rt, tenant_id, connection_id) >= 1  # what the process_events job runs
    with rt.uow(tenant_id) as uow:
        assert uow.referrals.get(rid).status.value == "qualified"
        assert len(uow.rewards.for_referral(rid)) == 2


ENVELOPE = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">
<OrganizationId>{org}</OrganizationId><ActionId>04k000000000001AAA</ActionId><SessionId xsi:nil="true"/>
<Notification><Id>04l000000000001AAA</Id><sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
<sf:Id>006000000000001AAA</sf:Id><sf:StageName>Closed Won</sf:StageName><sf:SystemModstamp>2026-11-02T09:00:00.000Z</sf:SystemModstamp>
</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"""


def test_receiver_refuses_other_orgs_and_dedupes(rt, client, emu):
    from refstage.services.push_keys import outbound_message_url

    tenant_id, connection_id, _ = setup_world(rt, client, FAST)
    path = urlsplit(outbound_message_url(rt, tenant_id, connection_id)).path
    wrong = client.post(path, data=ENVELOPE.format(org="00D000000000999AAA"), content_type="text/xml")
    assert wrong.status_code == 403 and b"Fault" in wrong.data
    assert rt.jobs.jobs == [] or all(j[0] != "process_events" for j in rt.jobs.jobs)
    bad = client.post(path, data=b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", content_type="text/xml")
    assert bad.status_code == 400
    assert client.post("/webhooks/salesforce/outbound-message/nope/key", data=b"<x/>").status_code == 403
    # The endpoint without a key (configured before push keys) fails loudly with a SOAP fault.
    stale = client.post(f"/webhooks/salesforce/outbound-message/{connection_id}", data=ENVELOPE.format(
        org=emu.control.org.org_id), content_type="text/xml")
    assert stale.status_code == 410 and b"push key" in stale.data
    org = emu.control.org.org_id
    for _ in range(2):  # at-least-once delivery: the second copy is acknowledged and dropped
        ok = client.post(path, data=ENVELOPE.format(org=org), content_type="text/xml")
        assert ok.status_code == 200 and b"<Ack>true</Ack>" in ok.data
    with rt.uow(tenant_id) as uow:
        assert uow.session.scalar(select(func.count()).select_from(m.CrmEventRow)) == 1


def test_callback_state_is_bound_and_single_use(rt, client, emu):
    from refstage.domain.audit import Actor
    from refstage.services import tenants
    from refstage.services.salesforce_connect import start_connect
    from tests.salesforce.helpers import browser_consent, callback_query

    from tests.oauth_support import console_session

    acme = tenants.create_tenant(rt, "Acme", "acme")
    started = start_connect(rt, acme.id, actor=Actor.system("t"), owner=console_session(client, acme.id), login_host=emu.base_url)
    q = callback_query(browser_consent(started.authorize_url))
    forged = dict(q, state=started.connection_id + ".not-the-secret")
    assert client.get("/salesforce/oauth/callback", query_string=forged).status_code == 400
    assert client.get("/salesforce/oauth/callback", query_string=q).status_code == 200
    assert client.get("/salesforce/oauth/callback", query_string=q).status_code == 400  # single use
    other = tenants.create_tenant(rt, "Other", "other")
    with rt.uow(other.id) as uow:
        assert uow.connections.list() == []


def test_disconnect_revokes(rt, client, emu):
    from refstage.domain.audit import Actor
    from refstage.services.connections import disconnect

    tenant_id, connection_id, _ = setup_world(rt, client, FAST)
    with rt.uow(tenant_id) as uow:
        tokens = rt.vault.open(uow.connections.credentials(connection_id))
    disconnect(rt, tenant_id, connection_id, actor=Actor.system("t"))
    r = requests.post(f"{emu.base_url}/services/oauth2/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "refstage-demo",
        "client_secret": "refstage-demo-secret"}, timeout=10)
    assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
    with rt.uow(tenant_id) as uow:
        assert uow.connections.get(connection_id).status.value == "disconnected"
        assert uow.connections.credentials(connection_id) is None


def test_revoked_refresh_token_marks_reconnect_required(rt, client, emu):
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)
    emu.control.revoke_tokens()
    report = run_sync(rt, tenant_id, connection_id)
    assert report.status == "failed"
    with rt.uow(tenant_id) as uow:
        assert uow.connections.get(connection_id).status.value == "reconnect_required"


def test_describe_milestones_and_count_matching(rt, client, emu):
    from refstage.domain.rules import Rule

    tenant_id, connection_id, _ = setup_world(rt, client, FAST)
    with rt.uow(tenant_id) as uow:
        connection = uow.connections.get(connection_id)
    gateway = rt.gateway(connection)
    stages = [s for s in gateway.describe_milestones() if s.object == "Opportunity"]
    assert any(s.value == "Closed Won" and s.is_won for s in stages)
    admin = OrgAdmin(emu)
    expected = admin.count("SELECT COUNT() FROM Opportunity WHERE StageName = 'Closed Won'")
    assert gateway.count_matching(Rule.parse("Opportunity.StageName == 'Closed Won'")) == expected


def test_soql_is_built_safely():
    assert soql.condition("Name", "equals", "O'Brien \\ x") == "Name = 'O\\'Brien \\\\ x'"
    assert soql.condition("Name", "contains", "50%_off") == "Name LIKE '%50\\%\\_off%'"
    assert soql.condition("Amount", "gte", "5000", "currency") == "Amount >= 5000"
    assert soql.condition("Type", "in", ["A", "B'"]) == "Type IN ('A', 'B\\'')"
    assert soql.where_all([FilterCondition("Account.Type", "equals", "Customer")]) == ["Account.Type = 'Customer'"]
    for bad in ("Name; DELETE", "Name OR Id", "1Name", ""):
        with pytest.raises(InvalidInput):
            soql.condition(bad, "equals", "x")
    with pytest.raises(InvalidInput):
        soql.condition("CloseDate", "equals", "2026-01-01' OR Id != null", "date")
    with pytest.raises(InvalidInput):
        soql.where_all([FilterCondition("Nope__c", "equals", "x")], {"name": "string"})


def test_outbound_message_parser():
    from refstage.adapters.crm.salesforce import outbound_message as om

    message = om.parse(ENVELOPE.format(org="00D000000000001AAA").encode())
    assert message.organization_id == "00D000000000001AAA"
    (note,) = message.notifications
    assert (note.notification_id, note.object, note.id) == ("04l000000000001AAA", "Opportunity", "006000000000001AAA")
    assert note.fields["StageName"] == "Closed Won" and note.stamp == "2026-11-02T09:00:00.000Z"
    note_xml = "<Notification>" + ENVELOPE.split("<Notification>", 1)[1].split("</Notification>", 1)[0] + "</Notification>"
    too_many = ENVELOPE.replace(note_xml, note_xml * 101).format(org="00D000000000001AAA")
    bad_id = ENVELOPE.replace("<sf:Id>006000000000001AAA</sf:Id>", "<sf:Id>006' OR 1=1</sf:Id>").format(org="x")
    for body in (too_many.encode(), bad_id.encode(), b"<!DOCTYPE x [<!ENTITY a 'b'>]><x>&a;</x>", b"<x/>", b"\xff"):
        with pytest.raises(om.MalformedMessage):
            om.parse(body)
