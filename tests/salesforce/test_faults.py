"""Every call can fail: token expiry inside Bulk jobs, 503 bursts, REQUEST_LIMIT_EXCEEDED and a worker
killed between batches all end in the same final state as a clean run."""

from __future__ import annotations

import pytest

from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.sync import run_sync
from tests.salesforce.helpers import OrgAdmin, final_state, refer, setup_world

# Small thresholds, so 200 contacts go through Bulk 2.0 (query + update) and syncs page in small batches.
SETTINGS = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05, "bulk_read_threshold": 50,
            "bulk_write_threshold": 50, "page_size": 7, "retries": 8}
JOBS = "/services/data/v62.0/jobs"


def journey(rt, client, emu, fault=None):
    emu.control.seed(contacts=170, seed=3)
    admin = OrgAdmin(emu)
    tenant_id, connection_id, program_id = setup_world(rt, client, SETTINGS)

    def step(name, fn):
        if fault:
            return fault(name, fn, tenant_id, connection_id)
        return fn()

    step("enrol", lambda: run_enrolment(rt, tenant_id, program_id))
    ids = refer(rt, tenant_id, program_id, 12)
    step("route", lambda: [route_referral(rt, tenant_id, i) for i in ids])
    step("sync", lambda: run_sync(rt, tenant_id, connection_id))
    leads = admin.query("SELECT Id FROM Lead WHERE Refstage_Referral_Id__c != null")
    opps = [admin.convert(l["Id"])["opportunityId"] for l in leads]
    admin.update("Opportunity", [{"Id": o, "StageName": "Closed Won", "Amount": 9000} for o in opps])
    step("sync", lambda: run_sync(rt, tenant_id, connection_id))
    # The safety net every deployment has: the next scheduled cycle.
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    return final_state(rt, admin, tenant_id, program_id), tenant_id, connection_id


def _clean(rt, client, emu):
    state, *_ = journey(rt, client, emu)
    return state


def _expected() -> dict:
    return {"advocates": 200, "links": 200, "referral_statuses": ["qualified"] * 12,
            "rewards": 24, "rewards_per_referral": [2], "pending_writes": 0, "org_contacts_with_code": 200,
            "org_referral_leads": 12, "org_referrals": 12, "org_referrals_won": 12, "org_rewards": 24,
            "org_opps_linked": 12}


def test_clean_run(rt, client, emu):
    assert _clean(rt, client, emu) == _expected()


def test_token_expiry_inside_bulk_jobs(rt, client, emu):
    from refstage.adapters.db import models as m

    def fault(name, fn, tenant_id, connection_id):
        if name == "enrol":
            with rt.uow(tenant_id) as uow:
                before = uow.session.get(m.ConnectionRow, connection_id).credentials
            # The session dies inside a running Bulk ingest job (after create, at upload/close/poll/results).
            emu.control.set_faults(f"401:#1,path={JOBS}/ingest/")
            try:
                result = fn()
            finally:
                emu.control.set_faults(None)
            assert emu.control.faults()["injected"].get("401") == 1
            with rt.uow(tenant_id) as uow:
                after = uow.session.get(m.ConnectionRow, connection_id).credentials
            assert after != before  # the rotated token was persisted
            return result
        if name == "sync":
            emu.control.expire_sessions()  # a real expiry: every access token is idle past the timeout
        return fn()

    state, *_ = journey(rt, client, emu, fault)
    assert state == _expected()


def test_503_bursts(rt, client, emu):
    def fault(name, fn, tenant_id, connection_id):
        emu.control.set_faults("503:0.3,seed=11")
        try:
            return fn()
        finally:
            emu.control.set_faults(None)

    state, *_ = journey(rt, client, emu, fault)
    assert emu.control.faults()["injected"].get("503", 0) > 0
    assert state == _expected()


def test_request_limit_exceeded_stops_and_resumes(rt, client, emu):
    def fault(name, fn, tenant_id, connection_id):
        if name != "sync":
            return fn()
        usage = emu.control.usage()["DailyApiRequests"]
        emu.control.set_limits(DailyApiRequests=usage["Used"] + 4)  # the org runs out mid-sync
        report = fn()
        assert report.status == "partial", report.error  # checkpointed and stopped, not failed
        emu.control.set_limits(DailyApiRequests=100000)
        return run_sync(rt, tenant_id, connection_id)

    state, *_ = journey(rt, client, emu, fault)
    assert state == _expected()


def test_worker_killed_between_batches(rt, client, emu):
    from refstage.adapters.crm.factory import gateway_for

    class Killed(Exception):
        pass

    def fault(name, fn, tenant_id, connection_id):
        if name != "sync":
            return fn()

        class Dying:
            def __init__(self, inner):
                self.inner = inner

            def __getattr__(self, attr):
                return getattr(self.inner, attr)

            def iter_changes(self, fields, cursor):
                for n, batch in enumerate(self.inner.iter_changes(fields, cursor)):
                    yield batch
                    if n == 2:
                        raise Killed("worker killed between batches")

        rt.gateway_factory = lambda r, c: Dying(gateway_for(r, c))
        try:
            with pytest.raises(Killed):
                fn()
        finally:
            rt.gateway_factory = None
        return run_sync(rt, tenant_id, connection_id)

    state, *_ = journey(rt, client, emu, fault)
    assert state == _expected()
