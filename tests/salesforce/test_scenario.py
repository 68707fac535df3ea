"""The whole journey over HTTPS against the emulated org: connect through the OAuth pages, enrol 1,000
contacts, refer 100 friends, route them as assigned leads, convert, move deals, sync, and see each reward
created exactly once and mirrored into Referral__c / Referral_Reward__c."""

from __future__ import annotations

from sqlalchemy import func, select

from refstage.adapters.db import models as m
from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.sync import run_sync
from tests.salesforce.helpers import OrgAdmin, final_state, refer, setup_world

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05, "bulk_read_threshold": 500, "bulk_write_threshold": 500}


def test_full_journey(rt, client, emu):
    emu.control.seed(contacts=1000)
    admin = OrgAdmin(emu)
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)
    with rt.uow(tenant_id) as uow:
        conn = uow.connections.get(connection_id)
    assert conn.status.value == "active" and conn.external_org_id.startswith("00D") and conn.instance_url == emu.base_url

    progress = run_enrolment(rt, tenant_id, program_id)
    total_contacts = admin.count("SELECT COUNT() FROM Contact WHERE Email != null")
    assert progress.enrolled == total_contacts >= 1000
    assert progress.links_written == total_contacts and progress.links_failed == 0
    enrol_calls = progress.api_calls
    again = run_enrolment(rt, tenant_id, program_id)  # idempotent, incremental
    assert again.enrolled == 0
    emu.control.seed(contacts=5, seed=9)
    newer = run_enrolment(rt, tenant_id, program_id)
    assert newer.enrolled == 5

    referral_ids = refer(rt, tenant_id, program_id, 100)
    for rid in referral_ids:
        assert route_referral(rt, tenant_id, rid).value == "routed"
        assert route_referral(rt, tenant_id, rid).value == "routed"  # re-running never creates twice
    leads = admin.query("SELECT Id, OwnerId, LeadSource, Owner.Username FROM Lead WHERE Refstage_Referral_Id__c != null")
    assert len(leads) == 100
    assert {l["Owner"]["Username"] for l in leads} >= {"ava.patel@refstage.test", "ben.okafor@refstage.test"}

    first = run_sync(rt, tenant_id, connection_id)
    assert first.status == "succeeded", first.error
    for lead in leads:
        admin.convert(lead["Id"])
    opps = admin.query("SELECT Id FROM Opportunity WHERE Id IN (SELECT ConvertedOpportunityId FROM Lead "
                       "WHERE Refstage_Referral_Id__c != null)")
    assert len(opps) == 100
    admin.update("Opportunity", [{"Id": o["Id"], "StageName": "Proposal/Price Quote", "Amount": 12000} for o in opps])
    mid = run_sync(rt, tenant_id, connection_id)
    assert mid.status == "succeeded" and mid.observe.rewards_created == 0
    admin.update("Opportunity", [{"Id": o["Id"], "StageName": "Closed Won"} for o in opps])
    won = run_sync(rt, tenant_id, connection_id)
    assert won.status == "succeeded", won.error
    assert won.observe.rewards_created == 200 and won.observe.qualified == 100
    again = run_sync(rt, tenant_id, connection_id)
    assert again.observe.rewards_created == 0 and again.status == "succeeded"

    state = final_state(rt, admin, tenant_id, program_id)
    assert state["rewards"] == 200 and state["rewards_per_referral"] == [2]
    assert state["org_referrals"] == 100 and state["org_rewards"] == 200 and state["org_referrals_won"] == 100
    assert state["org_opps_linked"] == 100 and state["pending_writes"] == 0
    with rt.uow(tenant_id) as uow:
        runs = list(uow.session.execute(select(m.SyncRunRow.status, m.SyncRunRow.api_calls)))
    assert all(status == "succeeded" for status, _ in runs)
    print(f"\nAPI calls: enrolment of {total_contacts} contacts = {enrol_calls}; syncs = {[c for _, c in runs]}")


def test_bulk_write_back_sends_the_referrals_job_before_reading_rewards(rt, client, emu, monkeypatch):
    """A backlog over the bulk threshold: the Referral__c job is submitted before any batch's rewards are read
    (Salesforce works on it while we read and spool them), and everything still lands once."""
    from refstage.adapters.crm.salesforce.bulk import BulkApi
    from refstage.services.ports import DeferredRewards

    emu.control.seed(contacts=60)
    admin = OrgAdmin(emu)
    tenant_id, connection_id, program_id = setup_world(rt, client, {**FAST, "bulk_write_threshold": 10})
    run_enrolment(rt, tenant_id, program_id)
    referral_ids = refer(rt, tenant_id, program_id, 30)
    for rid in referral_ids:
        route_referral(rt, tenant_id, rid)
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    for lead in admin.query("SELECT Id FROM Lead WHERE Refstage_Referral_Id__c != null"):
        admin.convert(lead["Id"])
    opps = admin.query("SELECT Id FROM Opportunity WHERE Id IN (SELECT ConvertedOpportunityId FROM Lead "
                       "WHERE Refstage_Referral_Id__c != null)")
    admin.update("Opportunity", [{"Id": o["Id"], "StageName": "Closed Won", "Amount": 12000} for o in opps])

    timeline: list[str] = []
    real_load, real_submit = DeferredRewards._loaded, BulkApi.submit

    def loaded(self):
        if self._items is None:
            timeline.append("rewards read")
        return real_load(self)

    def submit(self, sobject, *args, **kwargs):
        timeline.append(f"submit {sobject}")
        return real_submit(self, sobject, *args, **kwargs)

    monkeypatch.setattr(DeferredRewards, "_loaded", loaded)
    monkeypatch.setattr(BulkApi, "submit", submit)
    won = run_sync(rt, tenant_id, connection_id)
    assert won.status == "succeeded", won.error
    assert won.observe.rewards_created == 60 and won.write_failures == 0
    assert timeline[0] == "submit Referral__c" and "rewards read" in timeline
    assert timeline.index("submit Referral_Reward__c") > max(i for i, e in enumerate(timeline) if e == "rewards read")
    state = final_state(rt, admin, tenant_id, program_id)
    assert state["org_referrals"] == 30 and state["org_rewards"] == 60 and state["pending_writes"] == 0

    # The deals reopen. This sync's own observation moves the referrals and their rewards, over the threshold: they
    # go through the bulk jobs straight from the observation, no reward read back from the database.
    admin.update("Opportunity", [{"Id": o["Id"], "StageName": "Negotiation/Review"} for o in opps])
    del timeline[:]
    reopened = run_sync(rt, tenant_id, connection_id)
    assert reopened.status == "succeeded", reopened.error
    assert reopened.observe.disqualified == 30 and reopened.observe.rewards_changed == 60
    assert reopened.written == 90 and reopened.write_failures == 0
    assert "rewards read" not in timeline and timeline[:2] == ["submit Referral__c", "submit Referral_Reward__c"]
    with rt.uow(tenant_id) as uow:
        stored = sorted(uow.session.scalars(select(m.RewardRow.status)))
    assert "approved" not in stored  # the regression moved every reward
    assert sorted(r["Status__c"] for r in admin.query("SELECT Status__c FROM Referral_Reward__c")) == stored
    assert {r["Status__c"] for r in admin.query("SELECT Status__c FROM Referral__c")} == {"disqualified"}
    assert final_state(rt, admin, tenant_id, program_id)["pending_writes"] == 0
