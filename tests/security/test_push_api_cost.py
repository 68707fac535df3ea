"""What confirming pushes costs in CRM API calls, counted by the emulators themselves (the org's
DailyApiRequests counter; every request our Pipedrive client sent). Figures in docs/security.md.

Salesforce: one sObject Collections GET per object per ≤200 records a referral points at; records no
referral points at cost nothing; a conversion the read discovers costs one more GET for the opportunity
(plus its account and contact when the rules read them). Pipedrive: one `GET /api/v2/deals?ids=` per ≤100 deals."""

from __future__ import annotations

from urllib.parse import urlsplit

from refstage.services.enrolment import run_enrolment
from refstage.services.push_keys import outbound_message_url
from refstage.services.referrals import route_referral
from refstage.services.sync import drain_events, run_sync
from tests.salesforce.helpers import OrgAdmin, refer, setup_world
from tests.security.push_support import FAST, emu, envelope, settings, sf_emulator  # noqa: F401


def _used(emu) -> int:
    return emu.control.usage()["DailyApiRequests"]["Used"]


def _drain_cost(rt, emu, tenant_id, connection_id) -> int:
    before = _used(emu)
    assert drain_events(rt, tenant_id, connection_id) > 0
    return _used(emu) - before


def test_salesforce_confirm_read_costs_one_call_per_object_per_delivery(rt, client, emu):
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)
    run_enrolment(rt, tenant_id, program_id)
    ids = refer(rt, tenant_id, program_id, 6)
    for rid in ids:
        route_referral(rt, tenant_id, rid)
    run_sync(rt, tenant_id, connection_id)
    with rt.uow(tenant_id) as uow:
        leads = [uow.referrals.get(rid).crm.lead_id for rid in ids]
    org = emu.control.org.org_id
    path = urlsplit(outbound_message_url(rt, tenant_id, connection_id)).path

    def push(notes, first_id):
        r = client.post(path, data=envelope(org, notes, first_id), content_type="text/xml")
        assert r.status_code == 200, r.data

    # One delivery naming one referred lead: one call.
    push([("Lead", leads[0], {"Status": "Working"})], 1)
    assert _drain_cost(rt, emu, tenant_id, connection_id) == 1
    # One delivery naming all six referred leads, plus records no referral points at: still one call.
    push([("Lead", lead, {"Status": "Working"}) for lead in leads] +
         [("Opportunity", "006000000000999AAA", {"StageName": "Closed Won"}),
          ("Lead", "00Q000000000999AAA", {"Status": "Working"})], 10)
    assert _drain_cost(rt, emu, tenant_id, connection_id) == 1
    # Nothing a referral points at: no call at all.
    push([("Opportunity", "006000000000998AAA", {"StageName": "Closed Won"})], 30)
    assert _drain_cost(rt, emu, tenant_id, connection_id) == 0
    # A conversion pushed on the lead alone: the lead, then its new opportunity (so it qualifies in this drain).
    admin = OrgAdmin(emu)
    opp = admin.convert(leads[1])["opportunityId"]
    admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 9000}])
    push([("Lead", leads[1], {"IsConverted": "true"})], 40)
    assert _drain_cost(rt, emu, tenant_id, connection_id) == 2
    with rt.uow(tenant_id) as uow:
        assert uow.referrals.get(ids[1]).status.value == "qualified"


def test_salesforce_confirm_read_asks_for_at_most_200_records_a_call(rt, client, emu):
    tenant_id, connection_id, _ = setup_world(rt, client, FAST)
    with rt.uow(tenant_id) as uow:
        connection = uow.connections.get(connection_id)
    gateway = rt.gateway(connection)
    wanted = {"Lead": {f"00Q{n:015d}" for n in range(450)}, "Opportunity": {f"006{n:015d}" for n in range(3)}}
    before = _used(emu)
    batch = gateway.read_current({"Opportunity": {"StageName", "Amount"}}, wanted)
    assert _used(emu) - before == 3 + 1 == batch.api_calls  # ⌈450/200⌉ leads + one opportunity call
    assert batch.records == []  # none of them exists
