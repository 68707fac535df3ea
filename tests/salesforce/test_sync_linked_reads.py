"""Linked-only reads: a deal that a lead's conversion links during a sync is read in that sync (it has no
Referral__c yet, so the filtered read would not bring it), and the write-back does not re-send a link the
record already carries (that would bump its SystemModstamp and make every sync read it again)."""

from __future__ import annotations

from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.sync import run_sync, write_back_all
from tests.salesforce.helpers import OrgAdmin, refer, setup_world

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}


def _referral(rt, tenant_id, rid):
    with rt.uow(tenant_id, readonly=True) as uow:
        return uow.referrals.get(rid)


def _one_referral(rt, client, emu, seed: int):
    """A connected org with enrolled advocates and one captured referral: (admin, tenant, connection, referral)."""
    emu.control.seed(contacts=10, seed=seed)
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)  # duplicate_policy: review
    run_enrolment(rt, tenant_id, program_id)
    (rid,) = refer(rt, tenant_id, program_id, 1)
    return OrgAdmin(emu), tenant_id, connection_id, rid


def test_a_converted_deal_qualifies_in_the_same_sync_and_its_link_is_written_once(rt, client, emu):
    admin, tenant_id, connection_id, rid = _one_referral(rt, client, emu, seed=11)
    route_referral(rt, tenant_id, rid)
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    lead_id = _referral(rt, tenant_id, rid).crm.lead_id
    opp = admin.convert(lead_id)["opportunityId"]
    admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 7000}])
    assert admin.query(f"SELECT Referral__c FROM Opportunity WHERE Id = '{opp}'")[0]["Referral__c"] is None

    report = run_sync(rt, tenant_id, connection_id)
    assert report.status == "succeeded", report.error
    referral = _referral(rt, tenant_id, rid)
    assert referral.crm.opportunity_id == opp
    assert referral.status.value == "qualified"  # the deal was fetched by id in this sync
    linked = admin.query(f"SELECT Referral__c, SystemModstamp FROM Opportunity WHERE Id = '{opp}'")[0]
    assert linked["Referral__c"]  # the write-back pointed the deal at its referral

    run_sync(rt, tenant_id, connection_id)  # reads the echo of that write (the deal now carries its link)
    with rt.uow(tenant_id) as uow:
        uow.mark_stale(connection_id, "referral", rid, rt.now())  # the referral is mirrored again
        uow.commit()
    with rt.uow(tenant_id, readonly=True) as uow:
        connection = uow.connections.get(connection_id)
    assert write_back_all(rt, tenant_id, connection) >= 1
    after = admin.query(f"SELECT Referral__c, SystemModstamp FROM Opportunity WHERE Id = '{opp}'")[0]
    assert after == linked  # the link was not sent again


def test_a_cleared_link_is_caught_by_the_reconcile(rt, client, emu):
    """Someone clears a referred deal's Referral__c and then closes it: filtered reads miss it, the next
    reconcile reads it and the referral qualifies."""
    admin, tenant_id, connection_id, rid = _one_referral(rt, client, emu, seed=12)
    route_referral(rt, tenant_id, rid)
    run_sync(rt, tenant_id, connection_id)
    opp = admin.convert(_referral(rt, tenant_id, rid).crm.lead_id)["opportunityId"]
    run_sync(rt, tenant_id, connection_id)
    run_sync(rt, tenant_id, connection_id)
    admin.update("Opportunity", [{"Id": opp, "Referral__c": None, "StageName": "Closed Won", "Amount": 9000}])
    run_sync(rt, tenant_id, connection_id)
    assert _referral(rt, tenant_id, rid).status.value != "qualified"  # filtered out until the reconcile
    rt.clock.advance(hours=25)
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    assert _referral(rt, tenant_id, rid).status.value == "qualified"


def test_routing_retry_after_a_lost_commit_finds_its_own_lead(rt, client, emu):
    """An attempt created the Lead but died before our commit; a rep converted it meanwhile (so a Contact with
    the friend's email exists). The retry records that lead — it must not call our own lead a duplicate."""
    admin, tenant_id, connection_id, rid = _one_referral(rt, client, emu, seed=14)
    with rt.uow(tenant_id, readonly=True) as uow:
        referral = uow.referrals.get(rid)
        advocate = uow.advocates.get(referral.advocate_id)
        program = uow.programs.get(referral.program_id)
        connection = uow.connections.get(connection_id)
    lost = rt.gateway(connection).route_referral(referral, advocate, program, None)  # reached the CRM only
    admin.convert(lost.refs.lead_id)
    assert route_referral(rt, tenant_id, rid).value == "routed"
    assert _referral(rt, tenant_id, rid).crm.lead_id == lost.refs.lead_id
    assert admin.count(f"SELECT COUNT() FROM Lead WHERE Refstage_Referral_Id__c = '{rid}'") == 1
