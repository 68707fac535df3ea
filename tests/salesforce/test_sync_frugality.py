"""API frugality of the sync without losing its guarantees: a quiet org costs one COUNT() per object, and the
org-wide budget still stops a run — read from the Sforce-Limit-Info header, with no `limits/` call."""

from __future__ import annotations

from refstage.services.sync import run_sync
from tests.salesforce.helpers import setup_world

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}


def test_quiet_sync_costs_one_count_per_object(rt, client, emu):
    tenant_id, connection_id, _ = setup_world(rt, client, FAST)
    first = run_sync(rt, tenant_id, connection_id)
    assert first.status == "succeeded", first.error
    emu.control.set_faults(None)
    before = emu.control.usage()["DailyApiRequests"]["Used"]
    second = run_sync(rt, tenant_id, connection_id)
    assert second.status == "succeeded", second.error
    used = emu.control.usage()["DailyApiRequests"]["Used"] - before
    # Lead and Opportunity are read (the program's rule reads Opportunity); each COUNT() says 0 within the
    # overlap window only if nothing changed in it — either way, no limits/ call and no describe.
    assert second.api_calls == used
    assert used <= 4
    assert second.pulled == 0 or used > 2


def test_org_budget_from_limit_header_stops_the_run(rt, client, emu):
    tenant_id, connection_id, _ = setup_world(rt, client, {**FAST, "api_budget_fraction": 0.5})
    emu.control.set_limits(DailyApiRequests=1000)
    emu.control.use_api("DailyApiRequests", 600)  # the org is already past half its allowance
    before = emu.control.usage()["DailyApiRequests"]["Used"]
    try:
        report = run_sync(rt, tenant_id, connection_id)
        used = emu.control.usage()["DailyApiRequests"]["Used"] - before
    finally:
        emu.control.set_limits(DailyApiRequests=100000)
    assert report.status == "partial", report.error
    assert "Refstage stops at 50%" in (report.error or "")
    assert used == 1  # the first answer's header was enough; no limits/ call


def test_a_quiet_org_after_a_mass_update_is_not_re_read(rt, client, emu):
    """The overlap window re-reads recent changes once; after that, a quiet org costs one COUNT() per object
    — the watermark follows the org's own clock (its Date header), so old mass changes are not re-read
    forever. A later change is still seen."""
    from tests.salesforce.helpers import OrgAdmin

    tenant_id, connection_id, _ = setup_world(rt, client, {**FAST, "sync_from": "2000-01-01T00:00:00+00:00"})
    emu.control.seed(opportunities=300, seed=8)  # a mass change
    assert run_sync(rt, tenant_id, connection_id).pulled >= 300
    emu.control.advance_clock(20 * 60)  # twenty quiet minutes in the org
    run_sync(rt, tenant_id, connection_id)  # reads the overlap once more, ends at the org's clock
    before = emu.control.usage()["DailyApiRequests"]["Used"]
    quiet = run_sync(rt, tenant_id, connection_id)
    assert quiet.status == "succeeded" and quiet.pulled == 0
    assert emu.control.usage()["DailyApiRequests"]["Used"] - before == 2  # COUNT() on Lead and Opportunity
    admin = OrgAdmin(emu)
    opps = [r["Id"] for r in admin.query("SELECT Id FROM Opportunity ORDER BY Id LIMIT 2")]
    referral = admin.create("Referral__c", {"Friend_Name__c": "Linked Friend"})
    admin.update("Opportunity", [{"Id": opps[0], "StageName": "Closed Won", "Referral__c": referral}])
    assert run_sync(rt, tenant_id, connection_id).pulled == 1


def test_between_reconciles_only_linked_records_are_read(rt, client, emu):
    """Records that point at a Referral__c are read as they change; a change to a record no referral points
    at is read by the next reconcile (daily by default), not by every sync."""
    from tests.salesforce.helpers import OrgAdmin

    tenant_id, connection_id, _ = setup_world(rt, client, {**FAST, "sync_from": "2000-01-01T00:00:00+00:00"})
    emu.control.seed(opportunities=50, seed=9)
    assert run_sync(rt, tenant_id, connection_id).pulled >= 50  # the first read is a reconcile: everything
    emu.control.advance_clock(20 * 60)
    run_sync(rt, tenant_id, connection_id)
    admin = OrgAdmin(emu)
    linked, unlinked = [r["Id"] for r in admin.query("SELECT Id FROM Opportunity ORDER BY Id LIMIT 2")]
    referral = admin.create("Referral__c", {"Friend_Name__c": "Linked Friend"})
    admin.update("Opportunity", [{"Id": linked, "Referral__c": referral, "StageName": "Closed Won"},
                                 {"Id": unlinked, "StageName": "Closed Won"}])
    filtered = run_sync(rt, tenant_id, connection_id)
    assert filtered.status == "succeeded" and filtered.pulled == 1
    rt.clock.advance(hours=25)  # the daily reconcile is due
    reconcile = run_sync(rt, tenant_id, connection_id)
    assert reconcile.status == "succeeded" and reconcile.pulled >= 2  # both changes, from the last reconcile on
    assert run_sync(rt, tenant_id, connection_id).pulled <= 1  # filtered again (only the overlap's linked one)


def test_enrolment_without_conditions_reads_in_bulk_without_a_describe(rt, client, emu, monkeypatch):
    """The standard fields enrolment reads have types fixed by Salesforce; a describe is only needed to
    type a source's conditions."""
    from refstage.adapters.crm.salesforce.rest import RestApi
    from refstage.domain.audit import Actor
    from refstage.services import programs
    from refstage.services.enrolment import run_enrolment
    from tests.salesforce.helpers import PROGRAM

    emu.control.seed(contacts=30, seed=13)
    tenant_id, connection_id, _ = setup_world(rt, client, {**FAST, "bulk_read_threshold": 5})
    admin = Actor.system("test")
    program = programs.create_program(rt, tenant_id, {**PROGRAM, "slug": "all-contacts", "connection_id": connection_id,
                                                      "enrolment": {"kind": "salesforce_contacts"}}, admin)
    programs.set_program_status(rt, tenant_id, program.id, "live", admin)

    def no_describe(self, sobject):
        raise AssertionError(f"describe {sobject} called")

    monkeypatch.setattr(RestApi, "describe", no_describe)
    progress = run_enrolment(rt, tenant_id, program.id)
    assert progress.enrolled >= 30 and progress.links_failed == 0
