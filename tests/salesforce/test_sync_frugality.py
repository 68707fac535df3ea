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
