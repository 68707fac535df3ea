"""Tier and cap rules read the advocate's history for a whole sync chunk at once (grouped queries), and the
chunk's own decisions count as they are made: the guarantees are those of one query per referral."""

import datetime as dt
import uuid

from refstage.adapters.db import models as m
from refstage.domain.rewards import RewardStatus
from refstage.services import programs, qualification
from refstage.services.ports import ChangedRecord
from tests.integration.conftest import ADMIN

T0 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.timezone.utc)

CAPPED_PROGRAM = {
    "name": "Capped", "slug": "capped", "enrolment": {"kind": "salesforce_contacts"},
    "rule": "Opportunity.StageName == 'Closed Won'",
    "reward_rules": [
        {"key": "adv", "recipient": "advocate", "kind": "fixed", "amount": {"amount": "100", "currency": "USD"},
         "cap_count": 2, "cap_period": "month"},
        {"key": "tier3", "recipient": "advocate", "kind": "tier_bonus", "tier_at": 3,
         "amount": {"amount": "500", "currency": "USD"}},
    ],
    "owner": {"name": "Riley", "email": "riley@acme.test"},
}


def _setup(rt, world, referrals_per_advocate):
    program = programs.create_program(rt, world.tenant.id, {**CAPPED_PROGRAM, "connection_id": world.connection.id}, ADMIN)
    programs.set_program_status(rt, world.tenant.id, program.id, "live", ADMIN)
    now = rt.now()
    opps: dict[str, list[str]] = {}
    with rt.session_factory() as s:
        for n, (name, count) in enumerate(referrals_per_advocate.items()):
            adv_id = str(uuid.uuid4())
            s.execute(m.AdvocateRow.__table__.insert(), [{
                "id": adv_id, "tenant_id": world.tenant.id, "program_id": program.id, "name": name,
                "email": f"{name}@customer.test", "code": f"CAPTEST{n:02d}", "source": "api", "enrolled_at": now, "active": True}])
            for i in range(count):
                opp = f"006{name[:3].upper()}{i:012d}"
                opps.setdefault(adv_id, []).append(opp)
                s.execute(m.ReferralRow.__table__.insert(), [{
                    "id": str(uuid.uuid4()), "version": 1, "tenant_id": world.tenant.id, "program_id": program.id,
                    "advocate_id": adv_id, "connection_id": world.connection.id, "friend_name": f"Friend {i}",
                    "friend_email": f"f{i}.{name}@prospect.test", "friend_canonical_email": f"f{i}.{name}@prospect.test",
                    "source": "link", "consent_at": now, "consent_version": "1", "captured_at": now, "status": "routed",
                    "flags": [], "opportunity_id": opp, "routed_at": now, "updated_at": now}])
        s.commit()
    return program, opps


def _won(opp, minutes):
    return ChangedRecord("Opportunity", opp, {"StageName": "Closed Won"}, T0 + dt.timedelta(minutes=minutes))


def _rewards(rt, world, advocate_id):
    with rt.uow(world.tenant.id) as uow:
        return [r for r in uow.rewards.list(limit=1000) if r.advocate_id == advocate_id]


def test_caps_and_tiers_count_stored_history_and_the_chunks_own_decisions(rt, world):
    program, opps = _setup(rt, world, {"ada": 5, "bob": 1})
    ada, bob = list(opps)
    # One of Ada's referrals qualified in an earlier sync: stored history.
    first = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, [_won(opps[ada][0], 0)])
    assert first.rewards_created == 1
    # The other four and Bob's one in one chunk.
    rest = [_won(o, 10 + i) for i, o in enumerate(opps[ada][1:] + opps[bob])]
    stats = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, rest)
    assert stats.qualified == 5

    ada_rewards = _rewards(rt, world, ada)
    fixed = [r for r in ada_rewards if r.rule_key == "adv"]
    assert len(fixed) == 5  # one per referral, exactly once
    # cap_count 2 a month: the stored one and one from the chunk pass; the chunk's other three are blocked.
    assert sorted(r.status for r in fixed).count(RewardStatus.REJECTED) == 3
    assert len([r for r in fixed if r.status != RewardStatus.REJECTED]) == 2
    # The tier bonus goes to exactly one referral: Ada's third qualified (the stored one counts).
    assert len([r for r in ada_rewards if r.rule_key == "tier3"]) == 1

    bob_rewards = _rewards(rt, world, bob)  # another advocate in the same chunk: a history of his own
    assert [(r.rule_key, r.status) for r in bob_rewards] == [("adv", RewardStatus.APPROVED)]

    again = qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id, rest)
    assert again.rewards_created == 0 and len(_rewards(rt, world, ada)) == 6


def test_grouped_history_reads_match_the_single_advocate_reads(rt, world):
    program, opps = _setup(rt, world, {"cat": 3, "dan": 2, "eve": 0})
    cat, dan, eve = list(opps) + ["no-such-advocate"]
    qualification.observe_crm_changes(rt, world.tenant.id, world.connection.id,
                                      [_won(o, i) for i, o in enumerate(opps[cat] + opps[dan])])
    since = T0 - dt.timedelta(days=40)
    with rt.uow(world.tenant.id) as uow:
        counts = uow.referrals.qualified_counts([cat, dan, eve])
        assert counts == {cat: 3, dan: 2}
        assert counts[cat] == uow.referrals.qualified_count(cat)
        some_of_cats = [r.id for r in uow.referrals.list(advocate_id=cat)][:1]
        assert uow.referrals.qualified_counts([cat, dan], exclude=some_of_cats) == {
            cat: uow.referrals.qualified_count(cat, exclude=some_of_cats), dan: 2}
        totals = uow.rewards.period_totals_many([cat, dan, eve], "adv", since)
        assert set(totals) == {cat, dan}
        for advocate_id in (cat, dan):
            assert totals[advocate_id] == uow.rewards.period_totals(advocate_id, "adv", since)
        assert uow.rewards.period_totals_many([cat], "adv", rt.now() + dt.timedelta(days=1)) == {}
    with rt.uow("another-tenant") as uow:  # scoped: another tenant sees none of it
        assert uow.referrals.qualified_counts([cat, dan]) == {}
        assert uow.rewards.period_totals_many([cat, dan], "adv", since) == {}
