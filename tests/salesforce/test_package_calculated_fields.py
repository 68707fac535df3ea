"""The package's formula and roll-up summary fields, as the emulated org computes them, agree with what
the backend holds after rewards are created, approved and issued through the backend. The roll-ups are
read from the package's metadata, so the test follows the package when its fields change."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from defusedxml import ElementTree as ET

from refstage.domain.audit import Actor, ActorKind
from refstage.services import rewards as reward_service
from refstage.services.enrolment import run_enrolment
from refstage.services.referrals import route_referral
from refstage.services.sync import run_sync
from tests.salesforce.helpers import OrgAdmin, refer, setup_world

FAST = {"retry_backoff_seconds": 0.01, "bulk_poll_seconds": 0.05}
FIELDS = Path(__file__).resolve().parents[2] / "sfdx/force-app/main/default/objects/Referral__c/fields"
MD = "{http://soap.sforce.com/2006/04/metadata}"


def _rollups() -> dict[str, dict]:
    """Referral__c's roll-up summaries over Referral_Reward__c, straight from the metadata files."""
    out = {}
    for path in sorted(FIELDS.glob("*.field-meta.xml")):
        root = ET.parse(path).getroot()
        if root.findtext(f"{MD}type") != "Summary":
            continue
        assert root.findtext(f"{MD}summaryForeignKey") == "Referral_Reward__c.Referral__c"
        out[root.findtext(f"{MD}fullName")] = {
            "op": root.findtext(f"{MD}summaryOperation"),
            "field": (root.findtext(f"{MD}summarizedField") or ".").split(".", 1)[1] or None,
            "filters": [(i.findtext(f"{MD}field").split(".", 1)[1], i.findtext(f"{MD}operation"),
                         [v.strip() for v in (i.findtext(f"{MD}value") or "").split(",")])
                        for i in root.findall(f"{MD}summaryFilterItems")]}
    return out


def _expected(spec: dict, children: list[dict]) -> Decimal:
    """The roll-up, evaluated here independently of the emulator (the operations the package uses)."""
    kept = []
    for child in children:
        ok = True
        for field, op, values in spec["filters"]:
            assert op in ("equals", "notEqual"), f"extend this test for the filter operation {op}"
            ok &= (str(child[field]) in values) == (op == "equals")
        if ok:
            kept.append(child)
    if spec["op"] == "count":
        return Decimal(len(kept))
    values = [Decimal(str(c[spec["field"]])) for c in kept if c[spec["field"]] is not None]
    assert spec["op"] in ("sum", "min", "max"), spec
    if spec["op"] == "sum":
        return sum(values, Decimal(0))
    return (min if spec["op"] == "min" else max)(values) if values else None


def _check(rt, tenant_id, admin) -> dict[str, dict]:
    rollups = _rollups()
    assert rollups, "the package has no roll-up summary on Referral__c any more: update this test"
    with rt.uow(tenant_id) as uow:
        referrals = {r.id: r for r in uow.referrals.list(limit=1000)}
        rewards = uow.rewards.for_referrals(list(referrals))
    names = ", ".join(rollups)
    qualified_field = (FIELDS / "Is_Qualified__c.field-meta.xml").exists()
    rows = admin.query(f"SELECT Id, Backend_Id__c, {names}{', Is_Qualified__c' if qualified_field else ''} "
                       "FROM Referral__c")
    seen = {}
    for row in rows:
        backend = rewards.get(row["Backend_Id__c"], [])
        children = admin.query("SELECT Backend_Id__c, Status__c, Amount__c, Type__c FROM Referral_Reward__c "
                               f"WHERE Referral__c = '{row['Id']}'")
        # The mirror holds what the backend holds ...
        assert sorted((c["Backend_Id__c"], c["Status__c"], Decimal(str(c["Amount__c"]))) for c in children) == \
            sorted((w.id, w.status.value, w.amount.amount) for w in backend)
        # ... and each roll-up is what its metadata says over those children.
        for name, spec in rollups.items():
            expected = _expected(spec, children)
            got = row[name]
            assert (None if got is None else Decimal(str(got))) == expected, (name, row, children)
        if qualified_field:
            status = referrals[row["Backend_Id__c"]].status.value
            assert row["Is_Qualified__c"] == (1 if status in ("qualified", "rewarded") else 0), (row, status)
        seen[row["Backend_Id__c"]] = {name: row[name] for name in rollups}
    assert set(seen) == set(referrals)
    return seen


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
    _check(rt, tenant_id, admin)  # mirrored, nothing earned yet
    leads = admin.query("SELECT Id, Refstage_Referral_Id__c FROM Lead WHERE Refstage_Referral_Id__c != null")
    won = [lead for lead in leads if lead["Refstage_Referral_Id__c"] in ids[:3]]  # the fourth never closes
    opps = [admin.convert(lead["Id"])["opportunityId"] for lead in won]
    admin.update("Opportunity", [{"Id": o, "StageName": "Closed Won", "Amount": 9000} for o in opps])
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    created = _check(rt, tenant_id, admin)
    if "Reward_Count__c" in created:
        assert sorted(v["Reward_Count__c"] for v in created.values()) == [0, 2, 2, 2]

    # Approve what waits for review, issue some: the roll-ups follow what the backend decides.
    by_referral: dict[str, list] = {}
    for w in reward_service.list_rewards(rt, tenant_id):
        by_referral.setdefault(w.referral_id, []).append(w)
    first, second, third = (sorted(by_referral[r], key=lambda w: w.rule_key) for r in ids[:3])
    for w in first + second + third:
        if w.status.value != "approved":
            reward_service.approve_reward(rt, tenant_id, w.id, reviewer)
    for w in first + second[:1]:
        reward_service.issue_reward(rt, tenant_id, w.id, reviewer, "PAY-1")
    assert run_sync(rt, tenant_id, connection_id).status == "succeeded"
    final = _check(rt, tenant_id, admin)
    if "Issued_Reward_Count__c" in final:
        assert sorted(v["Issued_Reward_Count__c"] for v in final.values()) == [0, 0, 1, 2]
