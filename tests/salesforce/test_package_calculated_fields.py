"""The package's formula and roll-up summary fields, as the emulated org computes them, agree with what
the backend holds after rewards are created, approved, rejected and issued through the backend."""

from __future__ import annotations

from decimal import Decimal

from refstage.domain.audit import Actor, ActorKind
from refstage.services import rewards as reward_service
from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.sync import run_sync
from tests.salesforce.helpers import OrgAdmin, refer, setup_world

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}
QUALIFIED = ("qualified", "rewarded")


def _expected(rt, tenant_id) -> dict[str, tuple]:
    """Per backend referral id: (reward count, amount not cancelled/rejected, amount issued, is qualified)."""
    with rt.uow(tenant_id) as uow:
        referrals = uow.referrals.list(limit=1000)
        by_referral = uow.rewards.for_referrals([r.id for r in referrals])
    out = {}
    for r in referrals:
        rewards = by_referral.get(r.id, [])
        live = sum((w.amount.amount for w in rewards if w.status.value not in ("cancelled", "rejected")), Decimal(0))
        issued = sum((w.amount.amount for w in rewards if w.status.value == "issued"), Decimal(0))
        out[r.id] = (len(rewards), live, issued, 1 if r.status.value in QUALIFIED else 0)
    return out


def _in_org(admin) -> dict[str, tuple]:
    rows = admin.query("SELECT Backend_Id__c, Reward_Count__c, Total_Reward_Amount__c, Issued_Reward_Amount__c, "
                       "Is_Qualified__c FROM Referral__c")
    return {r["Backend_Id__c"]: (int(r["Reward_Count__c"]), Decimal(str(r["Total_Reward_Amount__c"])),
                                 Decimal(str(r["Issued_Reward_Amount__c"])), int(r["Is_Qualified__c"])) for r in rows}


def test_formula_and_rollups_match_the_backend(rt, client, emu):
    emu.control.seed(contacts=6, seed=5)
    admin = OrgAdmin(emu)
    reviewer = Actor(ActorKind.PERSON, "u1", "admin@acme.test")
    tenant_id, connection_id, program_id = setup_world(rt, client, FAST)
    run_enrolment(rt, tenant_id, program_id)
    ids = refer(rt, tenant_id, program_id, 4)
    for rid in ids:
        route_referral(rt, tenant_id, rid)
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    assert set(_in_org(admin).values()) == {(0, Decimal(0), Decimal(0), 0)}  # mirrored, nothing earned yet
    leads = admin.query("SELECT Id, Refstage_Referral_Id__c FROM Lead WHERE Refstage_Referral_Id__c != null")
    won = [l for l in leads if l["Refstage_Referral_Id__c"] in ids[:3]]  # the fourth never closes
    opps = [admin.convert(l["Id"])["opportunityId"] for l in won]
    admin.update("Opportunity", [{"Id": o, "StageName": "Closed Won", "Amount": 9000} for o in opps])
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    created = _expected(rt, tenant_id)
    assert sorted(v[0] for v in created.values()) == [0, 2, 2, 2]
    assert _in_org(admin) == created

    # Approve what waits for review, issue some: the roll-ups follow what the backend decides.
    rewards = reward_service.list_rewards(rt, tenant_id)
    by_referral: dict[str, list] = {}
    for w in rewards:
        by_referral.setdefault(w.referral_id, []).append(w)
    first, second, third = (sorted(by_referral[r], key=lambda w: w.rule_key) for r in ids[:3])
    for w in first + second + third:
        if w.status.value != "approved":
            reward_service.approve_reward(rt, tenant_id, w.id, reviewer)
    for w in first + second[:1]:
        reward_service.issue_reward(rt, tenant_id, w.id, reviewer, "PAY-1")
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    expected = _expected(rt, tenant_id)
    assert _in_org(admin) == expected
    issued = sorted(v[2] for v in expected.values())
    assert issued[-1] > 0 and issued.count(Decimal(0)) == 2  # the figures tell the cases apart
