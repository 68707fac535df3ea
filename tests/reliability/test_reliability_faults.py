"""(b) Faults: for many sync cycles, ~10 % of Salesforce calls fail with every fault kind the emulator
injects. 0 lost referrals, 0 duplicate Leads or rewards, and backend and org agree 100 % after 2 clean
cycles. (Pipedrive's counterpart: tests/pipedrive/test_reliability.py::test_volume_with_dropped_duplicated_webhooks_and_5xx.)"""

from __future__ import annotations

from refstage.services.enrolment import run_enrolment
from refstage.services.ports import CrmError
from refstage.services.referrals import FriendInput, capture_referral, route_referral
from refstage.services.sync import run_sync
from tests.salesforce.helpers import OrgAdmin, final_state, setup_world

# Small thresholds so reads and write-backs go through Bulk 2.0 too (where "bulkfail" bites).
SETTINGS = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05, "retries": 3, "bulk_read_threshold": 3,
            "bulk_write_threshold": 3, "page_size": 25}
# Every kind the emulator injects, ~10 % in all; timeouts kept short so a cycle stays quick. Each cycle
# also forces one kind on its next request (#1), in turn, so every kind bites even in the short mode.
# drop_after / timeout_after let the org commit the write and then lose the response: what a retry must
# not turn into a second Lead.
RATES = {"503": 0.025, "500": 0.02, "drop": 0.015, "lock": 0.015, "401": 0.01, "timeout": 0.005, "slow": 0.01,
         "403": 0.002, "bulkfail": 0.01, "drop_after": 0.015, "timeout_after": 0.005}


def _faults(cycle: int) -> str:
    forced = list(RATES)[cycle % len(RATES)]
    parts = [f"{kind}:#1" if kind == forced else f"{kind}:{rate}" for kind, rate in RATES.items()]
    return ",".join(parts) + f",seed={cycle},slow=0.3,timeout=1"


def _cycle(rt, tenant_id, connection_id):
    """One scheduled cycle as the worker runs it: route what waits, then sync. Failures are what retries see."""
    from refstage.domain.referrals import ReferralStatus

    errors = 0
    with rt.uow(tenant_id) as uow:
        waiting = [r.id for r in uow.referrals.list(status=ReferralStatus.CAPTURED.value, limit=1000)]
    for rid in waiting:
        try:
            route_referral(rt, tenant_id, rid)
        except CrmError:
            errors += 1
    try:
        report = run_sync(rt, tenant_id, connection_id)
        errors += report.status != "succeeded"
    except CrmError:
        errors += 1
    return errors


def test_many_faulty_cycles_then_two_clean_ones(rt, client, emu, size, record):
    cycles, per_cycle = size(len(RATES), 50), size(2, 3)
    emu.control.seed(contacts=cycles * per_cycle + 10, seed=4)
    admin = OrgAdmin(emu)
    tenant_id, connection_id, program_id = setup_world(rt, client, SETTINGS)
    run_enrolment(rt, tenant_id, program_id)
    with rt.uow(tenant_id) as uow:
        advocates = uow.advocates.list(program_id=program_id, limit=cycles * per_cycle)
    referral_ids, failures, converted = [], 0, set()
    for cycle in range(cycles):
        for adv in advocates[cycle * per_cycle:(cycle + 1) * per_cycle]:
            ref = capture_referral(rt, adv.code, FriendInput(f"Friend {adv.id[-6:]}", f"f-{adv.id[-12:]}@newco.example", "NewCo", None, True))
            referral_ids.append(ref.id)
        emu.control.set_faults(_faults(cycle))
        try:
            failures += _cycle(rt, tenant_id, connection_id)
        finally:
            emu.control.set_faults(None)
        # Reps work the leads in between (their own clicks are not ours to fault).
        for lead in admin.query("SELECT Id FROM Lead WHERE Refstage_Referral_Id__c != null AND IsConverted = false"):
            if lead["Id"] not in converted:
                opp = admin.convert(lead["Id"])["opportunityId"]
                admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 9000}])
                converted.add(lead["Id"])
    injected = sum(emu.control.faults()["injected"].values())
    for _ in range(2):  # two clean cycles
        _cycle(rt, tenant_id, connection_id)
        for lead in admin.query("SELECT Id FROM Lead WHERE Refstage_Referral_Id__c != null AND IsConverted = false"):
            opp = admin.convert(lead["Id"])["opportunityId"]
            admin.update("Opportunity", [{"Id": opp, "StageName": "Closed Won", "Amount": 9000}])
    assert _cycle(rt, tenant_id, connection_id) == 0
    state = final_state(rt, admin, tenant_id, program_id)
    n = len(referral_ids)
    record.update(cycles=cycles, referrals=n, faults_injected=emu.control.faults()["injected"], faults_total=injected,
                  failures_surfaced_to_jobs=failures, final_state=state)
    assert injected >= cycles, f"only {injected} faults were injected: the test proves little"
    assert set(record["faults_injected"]) >= set(RATES) - {"bulkfail"}, record["faults_injected"]
    # `failures` counts the faults that outlasted the connector's own retries and surfaced to the job.
    assert state["referral_statuses"] == ["qualified"] * n  # 0 lost referrals
    assert state["org_referral_leads"] == n  # 0 duplicate Leads
    assert state["rewards"] == 2 * n and state["rewards_per_referral"] == [2]  # 0 duplicate rewards
    assert state["org_referrals"] == n and state["org_rewards"] == 2 * n and state["pending_writes"] == 0
    assert state["org_referrals_won"] == n  # the org's mirror agrees with the backend


def test_lead_created_but_the_answer_lost(rt, client, emu):
    """Each Lead upsert commits in the org and its answer is lost (closed at once, or after a stall): the
    retried routing upserts on Refstage_Referral_Id__c and finds that Lead, so it never makes a second."""
    from refstage.domain.referrals import ReferralStatus
    from tests.salesforce.helpers import refer

    emu.control.seed(contacts=10, seed=4)
    admin = OrgAdmin(emu)
    tenant_id, connection_id, program_id = setup_world(rt, client, SETTINGS)
    run_enrolment(rt, tenant_id, program_id)
    ids = refer(rt, tenant_id, program_id, 3)
    before = dict(emu.control.faults()["injected"])  # the org may have served other tests
    emu.control.set_faults("drop_after:#2,timeout_after:#1,timeout=0.3,path=/services/data/v62.0/sobjects/Lead/")
    try:
        for _ in range(4):
            _cycle(rt, tenant_id, connection_id)
        injected = {k: v - before.get(k, 0) for k, v in emu.control.faults()["injected"].items() if v != before.get(k, 0)}
    finally:
        emu.control.set_faults(None)
    assert injected == {"drop_after": 2, "timeout_after": 1}, injected
    with rt.uow(tenant_id) as uow:
        statuses = [uow.referrals.get(i).status for i in ids]
    assert statuses == [ReferralStatus.ROUTED] * 3  # 0 lost referrals
    leads = admin.query("SELECT Id, Refstage_Referral_Id__c FROM Lead WHERE Refstage_Referral_Id__c != null")
    assert sorted(lead["Refstage_Referral_Id__c"] for lead in leads) == sorted(ids)  # 0 duplicate Leads
